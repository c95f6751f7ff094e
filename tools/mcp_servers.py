"""The MCP servers of one keel.yaml: where each is defined, connecting to them and listing their tools at
start (bounded), and checking those tools against the pins (keel.tools.mcp_pins).

A server is defined by one entry (`command` or `url`); further entries may name it alone, with `tools:`,
to give some of its tools another effect or resource template:

    - mcp: {name: notes, command: python, args: [server.py], tools: [list_notes, read_note]}
      effect: read
    - mcp: {name: notes, tools: [write_note]}
      effect: external
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mcp.types import Tool

from keel.tools.mcp import MCP_EFFECTS, mcp_tool_name
from keel.tools.mcp_client import START_TIMEOUT_S, McpClient, connection_for, discover
from keel.tools.mcp_pins import Pins, PinState

if TYPE_CHECKING:
    from keel.config import KeelConfig, McpServer, ToolEntry

__all__ = ["McpServers", "explain"]

log = logging.getLogger("keel.tools.mcp")


def explain(exc: BaseException) -> str:
    """One line for a connection failure: the first real exception inside anyio's exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass(frozen=True, slots=True, kw_only=True)
class McpServers:
    """The config's servers, connected once at start and listed."""

    config: KeelConfig
    clients: dict[str, McpClient]
    lines: dict[str, int]
    """The line of the entry defining each server."""
    tools: dict[str, list[Tool]]
    pins: Pins

    @classmethod
    def of(cls, config: KeelConfig, timeout_s: float = START_TIMEOUT_S) -> McpServers:
        """Connect to every MCP server of `config` and list its tools; ConfigError (FILE:LINE) otherwise."""
        clients: dict[str, McpClient] = {}
        lines: dict[str, int] = {}
        for entry, server in _mcp_entries(config):
            if entry.effect not in MCP_EFFECTS:
                raise config.error(
                    entry.line,
                    f"mcp server {server.name!r}: effect {entry.effect!r} is not possible for mcp tools "
                    "(a server cannot join keel's records transaction); "
                    f"declare one of {', '.join(MCP_EFFECTS)}",
                )
            if server.command is None and server.url is None:
                continue
            if server.name in clients:
                raise config.error(
                    entry.line,
                    f"mcp server {server.name!r} is defined twice (first at line {lines[server.name]}); "
                    f"name it alone in later entries: {{name: {server.name}, tools: [...]}}",
                )
            conn = connection_for(
                command=server.command,
                args=server.args,
                env=server.env,
                url=server.url,
                cwd=config.path.parent,
            )
            clients[server.name] = McpClient(server.name, conn)
            lines[server.name] = entry.line
        for entry, server in _mcp_entries(config):
            if server.name not in clients:
                raise config.error(
                    entry.line, f"mcp server {server.name!r} is not defined: give it a 'command' or a 'url'"
                )
        try:
            pins = Pins.beside(config.path)
        except ValueError as exc:
            raise config.error(0, str(exc)) from None
        listed: dict[str, list[Tool]] = {}
        for name, result in discover(list(clients.values()), timeout_s).items():
            if isinstance(result, BaseException):
                raise config.error(lines[name], f"mcp server {name!r}: {explain(result)}")
            listed[name] = result
        return cls(config=config, clients=clients, lines=lines, tools=listed, pins=pins)

    def check_pins(self) -> None:
        """Refuse (ConfigError at the server's line) a server whose tools are not as pinned; warn of a
        pinned tool the server no longer lists."""
        for name, tools in self.tools.items():
            if (refusal := self.pins.refusal(name, tools)) is not None:
                raise self.config.error(self.lines[name], refusal)
            for gone in self.pins.removed(name, tools):
                log.warning("mcp server %r no longer lists pinned tool %r (re-pin to forget it)", name, gone)

    def selected(self, entry: ToolEntry) -> list[Tool]:
        """The tools of `entry`'s server that the entry declares (all, without `tools:`)."""
        assert entry.mcp is not None
        tools = self.tools[entry.mcp.name]
        if entry.mcp.tools is None:
            return tools
        by_name = {t.name: t for t in tools}
        missing = [t for t in entry.mcp.tools if t not in by_name]
        if missing:
            known = ", ".join(by_name) or "none"
            raise self.config.error(
                entry.line, f"mcp server {entry.mcp.name!r} has no tool {missing[0]!r} (its tools: {known})"
            )
        return [by_name[t] for t in entry.mcp.tools]

    def states(self) -> dict[str, PinState]:
        """The pin state of every listed tool, by the name the model calls it."""
        return {
            mcp_tool_name(server, t.name): self.pins.state(server, t)
            for server, tools in self.tools.items()
            for t in tools
        }


def _mcp_entries(config: KeelConfig) -> Iterator[tuple[ToolEntry, McpServer]]:
    for entry in config.tools or ():
        if entry.source == "mcp" and entry.mcp is not None:
            yield entry, entry.mcp
