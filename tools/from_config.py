"""The tool registry a keel.yaml asks for: its `tools:` entries, each checked at start (file:line errors).

No `tools:` key (or no config): keel's built-in tools, as before. MCP entries: every server is connected
and listed at start (keel.tools.mcp_servers) and its tools must be as pinned (keel.tools.mcp_pins).
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import replace
from typing import TYPE_CHECKING

from keel.tools.imported import ImportedToolError, spec_from_tool
from keel.tools.registry import ToolRegistry, default_registry
from keel.tools.spec import ToolSpec

if TYPE_CHECKING:
    from keel.config import KeelConfig, ToolEntry
    from keel.tools.mcp_servers import McpServers

# The MCP modules import the `mcp` SDK and langchain-mcp-adapters (a third of a second): only a config
# with an `mcp` tool entry imports them (inside the functions below), so a run without one never pays.

__all__ = ["registry_from_config", "tool_prices"]


def registry_from_config(
    config: KeelConfig | None, *, mcp: McpServers | None = None, check_pins: bool = True
) -> ToolRegistry:
    """The registry of a run under `config`; ConfigError (``FILE:LINE: reason``) for any bad entry.
    `mcp`: the config's servers, already listed (`keel tools list` reuses them; connected here otherwise).
    `check_pins=False` only to show tools whatever their pins (`keel tools list`), never for a run."""
    if config is None or config.tools is None:
        return default_registry()
    if mcp is None and any(entry.source == "mcp" for entry in config.tools):
        from keel.tools.mcp_servers import McpServers

        mcp = McpServers.of(config)
    if mcp is not None and check_pins:
        mcp.check_pins()
    builtins = {spec.name: spec for spec in default_registry()}
    specs: dict[str, ToolSpec] = {}
    origins: dict[str, int] = {}
    for entry in config.tools:
        for spec in _specs(config, entry, builtins, mcp):
            if spec.name in specs:
                raise config.error(entry.line, f"tool {spec.name!r} is listed twice")
            specs[spec.name] = spec
            origins[spec.name] = entry.line
    closers = [client.aclose for client in mcp.clients.values()] if mcp is not None else []
    return ToolRegistry(specs.values(), closers=closers, origins=origins)


def tool_prices(config: KeelConfig | None, registry: ToolRegistry) -> dict[str, float]:
    """USD per call of the tools whose entry sets `price_usd`, by tool name (`registry`: the one
    registry_from_config built from this config; every tool of an MCP entry costs the entry's price)."""
    if config is None or not config.tools:
        return {}
    by_line = {entry.line: entry.price_usd for entry in config.tools if entry.price_usd is not None}
    return {name: by_line[line] for name, line in registry.origins.items() if line in by_line}


def _specs(
    config: KeelConfig, entry: ToolEntry, builtins: dict[str, ToolSpec], mcp: McpServers | None
) -> list[ToolSpec]:
    if entry.source != "mcp":
        return [_spec(config, entry, builtins)]
    from keel.tools.mcp import McpToolError, spec_from_mcp_tool

    assert mcp is not None and entry.mcp is not None and entry.effect is not None
    client = mcp.clients[entry.mcp.name]
    specs = []
    for tool in mcp.selected(entry):
        try:
            specs.append(
                spec_from_mcp_tool(
                    client, tool, effect=entry.effect, resource=entry.resource, timeout_s=entry.timeout_s
                )
            )
        except McpToolError as exc:
            raise config.error(entry.line, f"mcp server {entry.mcp.name!r}: {exc}") from None
    return specs


def _spec(config: KeelConfig, entry: ToolEntry, builtins: dict[str, ToolSpec]) -> ToolSpec:
    if entry.source == "builtin":
        return _builtin(config, entry, builtins)
    module_name, _, attr = entry.target.partition(":")
    _importable_beside(config)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is a start-up error at the entry's line
        raise config.error(entry.line, f"import {entry.target!r}: {type(exc).__name__}: {exc}") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise config.error(entry.line, f"import {entry.target!r}: {module_name} has no {attr!r}")
        obj = getattr(obj, part)
    assert entry.effect is not None  # the parser refuses a python entry without one
    try:
        return spec_from_tool(obj, effect=entry.effect, resource=entry.resource, timeout_s=entry.timeout_s)
    except ImportedToolError as exc:
        raise config.error(entry.line, f"import {entry.target!r}: {exc}") from None


def _importable_beside(config: KeelConfig) -> None:
    """Make the config's own folder importable, so `import: support_desk.tools:lookup_order` finds the
    package next to keel.yaml wherever keel is started from (as `python -m` would from that folder)."""
    folder = str(config.path.parent)
    if folder not in sys.path:
        sys.path.append(folder)


def _builtin(config: KeelConfig, entry: ToolEntry, builtins: dict[str, ToolSpec]) -> ToolSpec:
    spec = builtins.get(entry.target)
    if spec is None:
        known = ", ".join(builtins)
        raise config.error(entry.line, f"unknown built-in tool {entry.target!r} (known: {known})")
    if entry.effect is not None and entry.effect != spec.effect:
        raise config.error(
            entry.line, f"built-in {spec.name!r} is {spec.effect!r}; it cannot be declared {entry.effect!r}"
        )
    if entry.resource is not None:
        raise config.error(entry.line, f"built-in {spec.name!r} has its own resource; remove it")
    if entry.timeout_s is not None:
        return replace(spec, timeout_s=entry.timeout_s)
    return spec
