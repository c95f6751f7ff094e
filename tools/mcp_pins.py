"""Pins of MCP tools: what each tool of each server said (name, description, inputSchema) when an admin
reviewed it, kept in `keel.pins.json` beside keel.yaml, so a server that later changes a tool is refused.

Why: an MCP server is code keel does not control. A new description can carry an injected instruction to
the model; a changed schema can widen what a call does. `keel tools pin` records a sha256 of the canonical
JSON (sorted keys, no spaces) of `{name, description, inputSchema}` and keeps the description and schema
themselves, so a difference can be shown, not only detected. The file is JSON with sorted keys and an
indent: reviewable and diffable in git.

At start a tool whose digest differs, a tool new on a pinned server, and a server never pinned are refused
(one line: which tool, which field, the difference, the fix). A pinned tool the server no longer lists is
a warning: it cannot widen anything.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mcp.types import Tool

__all__ = ["PINS_FILE", "Pins", "PinState", "describe_change", "digest", "pin_record", "schema_changes"]

PINS_FILE = "keel.pins.json"
"""The pins file's name, beside the config file."""

PinState = Literal["pinned", "changed", "new", "unpinned"]
"""pinned: as reviewed; changed: differs from its pin; new: not in the pins of a pinned server;
unpinned: its server was never pinned."""

_CLIP = 80


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def pin_record(tool: Tool) -> dict[str, Any]:
    """What is pinned of one tool: its description, its inputSchema and their digest."""
    body = {"name": tool.name, "description": tool.description or "", "inputSchema": tool.inputSchema}
    return {
        "sha256": digest(body),
        "description": body["description"],
        "inputSchema": tool.inputSchema,
    }


def digest(body: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of `{name, description, inputSchema}`."""
    return hashlib.sha256(_canonical(body).encode()).hexdigest()


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _CLIP else text[: _CLIP - 1] + "…"


def _from_first_difference(before: str, after: str) -> tuple[str, str]:
    """Both texts clipped to show where they start to differ (a change at the end of a long description
    must be visible, not cut away)."""
    same = 0
    while same < min(len(before), len(after)) and before[same] == after[same]:
        same += 1
    start = max(0, same - 20)
    cut = "…" if start else ""
    return _clip(cut + before[start:]), _clip(cut + after[start:])


def schema_changes(before: Any, after: Any, path: str = "") -> list[str]:
    """The JSON paths where two schemas differ: `properties.path (added)`, `required (changed)`."""
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[str] = []
        for key in sorted(set(before) | set(after), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in before:
                out.append(f"{where} (added: {_clip(_canonical(after[key]))})")
            elif key not in after:
                out.append(f"{where} (removed)")
            else:
                out.extend(schema_changes(before[key], after[key], where))
        return out
    if before != after:
        return [f"{path or 'inputSchema'} (was {_clip(_canonical(before))}, now {_clip(_canonical(after))})"]
    return []


def describe_change(pinned: dict[str, Any], now: dict[str, Any]) -> str:
    """The difference between a tool's pin and what the server lists now, in one line."""
    parts = []
    if pinned.get("description", "") != now["description"]:
        before, after = _from_first_difference(
            " ".join(pinned.get("description", "").split()), " ".join(now["description"].split())
        )
        parts.append(f"description was {before!r}, now {after!r}")
    changes = schema_changes(pinned.get("inputSchema", {}), now["inputSchema"])
    if changes:
        parts.append("inputSchema changed at " + "; ".join(changes))
    return "; ".join(parts) or "digest differs"


@dataclass(frozen=True, slots=True)
class Pins:
    """The pins file of one config: `{server: {tool: record}}`."""

    path: Path
    servers: dict[str, dict[str, dict[str, Any]]]

    @classmethod
    def beside(cls, config_path: Path) -> Pins:
        """The pins next to `config_path` (none pinned when the file does not exist)."""
        path = config_path.parent / PINS_FILE
        if not path.is_file():
            return cls(path, {})
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            servers = data["servers"]
            if not isinstance(servers, dict):
                raise TypeError("'servers' is not an object")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: unreadable pins file ({exc}); run `keel tools pin` again") from None
        return cls(path, servers)

    def state(self, server: str, tool: Tool) -> PinState:
        """Whether `tool` of `server` is as pinned."""
        if server not in self.servers:
            return "unpinned"
        pinned = self.servers[server].get(tool.name)
        if pinned is None:
            return "new"
        return "pinned" if pinned.get("sha256") == pin_record(tool)["sha256"] else "changed"

    def refusal(self, server: str, tools: list[Tool]) -> str | None:
        """Why this server's tools may not be used as they are (None: every tool is as pinned)."""
        fix = f"review it, then run `keel tools pin` (pins: {self.path.name})"
        if server not in self.servers:
            return f"mcp server {server!r} is not pinned; {fix}"
        for tool in tools:
            state = self.state(server, tool)
            if state == "new":
                return f"mcp server {server!r}: tool {tool.name!r} is new since the pin; {fix}"
            if state == "changed":
                change = describe_change(self.servers[server][tool.name], pin_record(tool))
                return f"mcp server {server!r}: tool {tool.name!r} changed since the pin: {change}; {fix}"
        return None

    def removed(self, server: str, tools: list[Tool]) -> list[str]:
        """Pinned tools of `server` it no longer lists."""
        listed = {t.name for t in tools}
        return sorted(set(self.servers.get(server, {})) - listed)

    def write(self, discovered: dict[str, list[Tool]]) -> None:
        """Pin every listed tool of these servers (the config's servers: pins of others are dropped)."""
        servers = {server: {t.name: pin_record(t) for t in tools} for server, tools in discovered.items()}
        body = {
            "about": "MCP tools as reviewed: keel refuses a tool that differs. Update with `keel tools pin`.",
            "servers": servers,
        }
        self.path.write_text(json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False) + "\n", "utf-8")
