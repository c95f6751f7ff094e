"""The rate-limit policy (`policies/limits.yaml`): moving windows per tool and per user per tool."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from limits import RateLimitItem, parse

__all__ = ["LimitsPolicy", "LimitsPolicyError", "ToolLimits"]

_SCOPES = ("per_tool", "per_user")


class LimitsPolicyError(ValueError):
    """The limits file is malformed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolLimits:
    """The windows one tool is held to."""

    per_tool: RateLimitItem | None = None
    per_user: RateLimitItem | None = None


def _parse(path: Path, where: str, raw: Any) -> ToolLimits:
    if not isinstance(raw, dict) or not raw or set(raw) - set(_SCOPES):
        raise LimitsPolicyError(f"{path}: {where} needs per_tool and/or per_user (nothing else)")
    items: dict[str, RateLimitItem] = {}
    for scope, text in raw.items():
        try:
            items[scope] = parse(str(text))
        except ValueError:
            raise LimitsPolicyError(f"{path}: {where}.{scope}: {text!r} is not like '10/minute'") from None
    return ToolLimits(**items)


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitsPolicy:
    """Rate limits by tool name, with an optional default for tools not listed."""

    tools: Mapping[str, ToolLimits]
    default: ToolLimits | None = None
    source: str = "<memory>"

    @classmethod
    def load(cls, path: Path) -> LimitsPolicy:
        """Read and validate a limits file; a mistake names the file and the entry."""
        try:
            data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise LimitsPolicyError(f"{path}: cannot read limits: {exc}") from None
        if not isinstance(data, dict) or data.get("version") != 1:
            raise LimitsPolicyError(f"{path}: expected a mapping with version: 1")
        unknown = set(data) - {"version", "default", "tools"}
        if unknown:
            raise LimitsPolicyError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
        tools = data.get("tools") or {}
        if not isinstance(tools, dict):
            raise LimitsPolicyError(f"{path}: tools must be a mapping of tool name to limits")
        default = data.get("default")
        return cls(
            tools={str(name): _parse(path, f"tools.{name}", raw) for name, raw in tools.items()},
            default=None if default is None else _parse(path, "default", default),
            source=str(path),
        )

    def for_tool(self, tool: str) -> ToolLimits | None:
        """The windows `tool` is held to, or None when it has no limit."""
        return self.tools.get(tool, self.default)
