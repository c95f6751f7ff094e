"""An agent version: the bundle a run's behaviour depends on, named `<name>@<content hash>`.

The bundle (its manifest) holds the system prompt text (and the plan instruction when planning is on), the
model chain and the prices given next to it, the toolset (each tool's name, source, declared effect,
resource template, timeout, price, the sha256 of the schema the model sees and, for an MCP tool, the
sha256 its pin records) and the contents of the policy, prices and limits files. Paths are left out: the
same files elsewhere are the same version.

The id is `<name>@<first 12 hex of sha256(canonical JSON of the manifest)>`, where the name is keel.yaml's
`agent.name` and, joined by `-`, the version label (`agent.version`, else the settings' `version`): the same
config gives the same id in every process; changing anything in the bundle changes the hash. It is computed
once, when the backends are built (`Backends.version`); nothing is read for it at run time.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.ids import ID_RULE, is_id
from keel.prompts import PLAN_INSTRUCTION, builtin_instructions

if TYPE_CHECKING:
    from keel.config import KeelConfig
    from keel.settings import Settings
    from keel.tools.registry import ToolRegistry

__all__ = [
    "AgentVersion",
    "MANIFEST_SCHEMA",
    "VERSION_ID_MAX",
    "agent_version",
    "build_manifest",
    "diff_manifests",
    "manifest_hash",
    "version_name",
]

MANIFEST_SCHEMA = 1
"""Bumped when the manifest's shape changes (every id changes with it)."""
VERSION_ID_MAX = 64
"""The longest id (the width of `executions.version` and `agent_versions.version_id`)."""
_HASH_CHARS = 12
_FILES = ("policy", "prices", "limits")


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentVersion:
    """One agent version: `id` is `<name>@<hash>`, `manifest` what the hash is over."""

    id: str
    name: str
    manifest: dict[str, Any] = field(repr=False)


def canonical(manifest: Mapping[str, Any]) -> bytes:
    """The manifest as canonical JSON: sorted keys, no whitespace, UTF-8."""
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def manifest_hash(manifest: Mapping[str, Any]) -> str:
    """The first 12 hex characters of the sha256 of the canonical manifest."""
    return hashlib.sha256(canonical(manifest)).hexdigest()[:_HASH_CHARS]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def version_name(agent: str, label: str) -> str:
    """`<agent>-<label>`; ValueError (one line) when it is not an id or would make the id too long."""
    name = f"{agent}-{label}"
    if not is_id(name) or len(name) + 1 + _HASH_CHARS > VERSION_ID_MAX:
        raise ValueError(
            f"agent version name {name!r} (agent.name-version) must be an id ({ID_RULE}) of at most "
            f"{VERSION_ID_MAX - 1 - _HASH_CHARS} characters"
        )
    return name


def build_manifest(
    *,
    instructions: str,
    plan: bool,
    model: str,
    fallbacks: list[str],
    model_prices: Mapping[str, tuple[float, float]],
    tools: list[dict[str, Any]],
    files: Mapping[str, str],
) -> dict[str, Any]:
    """The manifest of a bundle, from plain values (`tools`: one dict per tool with at least `name`;
    `files`: the policy, prices and limits files' text)."""
    return {
        "schema": MANIFEST_SCHEMA,
        "prompt": {"system": instructions, "plan": PLAN_INSTRUCTION if plan else None},
        "model": {
            "primary": model,
            "fallbacks": list(fallbacks),
            "prices": {name: list(p) for name, p in sorted(model_prices.items())},
        },
        "tools": {t["name"]: {k: v for k, v in t.items() if k != "name"} for t in tools},
        "files": {kind: {"sha256": _sha(text), "text": text} for kind, text in files.items()},
    }


def agent_version(
    settings: Settings,
    *,
    config: KeelConfig | None,
    registry: ToolRegistry,
    instructions: str | None,
    model_name: str,
    tool_prices: Mapping[str, float],
) -> AgentVersion:
    """The version the backends built from `settings` (config applied) run as. Reads the policy, prices
    and limits files once (and the MCP pins beside the config, when it has MCP tools)."""
    pins = _pins(config, registry)
    tools = [
        {
            "name": spec.name,
            "source": spec.source,
            "effect": spec.effect,
            "resource": spec.resource_template,
            "timeout_s": spec.timeout_s,
            "price_usd": tool_prices.get(spec.name),
            "schema_sha256": _sha(json.dumps(spec.schema(), sort_keys=True)),
            **({"pin_sha256": pins.get(spec.name)} if spec.source == "mcp" else {}),
        }
        for spec in sorted(registry, key=lambda s: s.name)
    ]
    files = {
        kind: Path(getattr(settings, f"{kind}_file")).read_text(encoding="utf-8", errors="replace")
        for kind in _FILES
    }
    manifest = build_manifest(
        instructions=instructions if instructions is not None else builtin_instructions(),
        plan=settings.plan_enabled,
        model=f"{settings.model_provider}:{model_name}",
        fallbacks=list(settings.fallback_models),
        model_prices=config.model_prices if config is not None else {},
        tools=tools,
        files=files,
    )
    agent = config.agent.name if config is not None else "keel"
    name = version_name(agent, settings.version)
    return AgentVersion(id=f"{name}@{manifest_hash(manifest)}", name=name, manifest=manifest)


def _pins(config: KeelConfig | None, registry: ToolRegistry) -> dict[str, str]:
    """Tool name -> the sha256 its pin records, for the MCP tools of `registry`."""
    if config is None or not any(spec.source == "mcp" for spec in registry):
        return {}
    from keel.tools.mcp import mcp_tool_name
    from keel.tools.mcp_pins import Pins

    servers = Pins.beside(config.path).servers
    return {
        mcp_tool_name(server, tool): str(record.get("sha256"))
        for server, tools in servers.items()
        for tool, record in tools.items()
    }


def diff_manifests(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """What changed from manifest `a` to `b`, one line each (empty: nothing)."""
    lines: list[str] = []
    lines += _diff_prompt(a.get("prompt", {}), b.get("prompt", {}))
    lines += _diff_model(a.get("model", {}), b.get("model", {}))
    lines += _diff_tools(a.get("tools", {}), b.get("tools", {}))
    for kind in _FILES:
        before = a.get("files", {}).get(kind, {}).get("sha256")
        after = b.get("files", {}).get(kind, {}).get("sha256")
        if before != after:
            lines.append(f"{kind}: changed (sha256 {str(before)[:12]} -> {str(after)[:12]})")
    if a.get("schema") != b.get("schema"):
        lines.append(f"manifest schema: {a.get('schema')} -> {b.get('schema')}")
    return lines


def _diff_prompt(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    lines = []
    before, after = str(a.get("system", "")), str(b.get("system", ""))
    if before != after:
        delta = list(difflib.ndiff(before.splitlines(), after.splitlines()))
        added = sum(1 for d in delta if d.startswith("+ "))
        removed = sum(1 for d in delta if d.startswith("- "))
        lines.append(f"prompt: changed (+{added} -{removed} lines)")
    if a.get("plan") != b.get("plan"):
        lines.append(f"plan: {'on' if a.get('plan') else 'off'} -> {'on' if b.get('plan') else 'off'}")
    return lines


def _diff_model(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    lines = []
    if a.get("primary") != b.get("primary"):
        lines.append(f"model: {a.get('primary')} -> {b.get('primary')}")
    if a.get("fallbacks") != b.get("fallbacks"):
        lines.append(f"fallback models: {_list(a.get('fallbacks'))} -> {_list(b.get('fallbacks'))}")
    if a.get("prices") != b.get("prices"):
        lines.append("model prices: changed")
    return lines


def _diff_tools(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    lines = [f"tool added: {name} ({b[name].get('effect')})" for name in sorted(b.keys() - a.keys())]
    lines += [f"tool removed: {name}" for name in sorted(a.keys() - b.keys())]
    for name in sorted(a.keys() & b.keys()):
        before, after = a[name], b[name]
        if before.get("effect") != after.get("effect"):
            lines.append(f"tool {name}: effect {before.get('effect')} -> {after.get('effect')}")
        keys = before.keys() | after.keys()
        changed = sorted(k for k in keys if k != "effect" and before.get(k) != after.get(k))
        if changed:
            lines.append(f"tool {name}: {', '.join(changed)} changed")
    return lines


def _list(value: Any) -> str:
    return ", ".join(value) if value else "none"
