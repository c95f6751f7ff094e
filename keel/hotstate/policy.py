"""The rate-limit policy (`policies/limits.yaml`): moving windows per tool and per user per tool."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from limits import RateLimitItem, parse

from keel.yamlfile import YamlDoc, YamlFileError

__all__ = ["LimitsPolicy", "LimitsPolicyError", "ToolLimits"]

_SCOPES = ("per_tool", "per_user")


class LimitsPolicyError(YamlFileError):
    """The limits file is malformed: ``FILE:LINE: reason``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolLimits:
    """The windows one tool is held to."""

    per_tool: RateLimitItem | None = None
    per_user: RateLimitItem | None = None


def _parse(doc: YamlDoc, where: str, node: yaml.Node) -> ToolLimits:
    fields = doc.mapping(node, where, _SCOPES)
    if not fields:
        raise doc.fail(node, f"{where} needs per_tool and/or per_user")
    items: dict[str, RateLimitItem] = {}
    for scope, value in fields.items():
        text = doc.value(value)
        try:
            items[scope] = parse(str(text))
        except ValueError:
            raise doc.fail(value, f"{where}.{scope}: {text!r} is not like '10/minute'") from None
    return ToolLimits(**items)


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitsPolicy:
    """Rate limits by tool name, with an optional default for tools not listed."""

    tools: Mapping[str, ToolLimits]
    default: ToolLimits | None = None
    source: str = "<memory>"

    @classmethod
    def load(cls, path: Path) -> LimitsPolicy:
        """Read and validate a limits file; a mistake names the file, the line and the entry."""
        doc = YamlDoc.load(path, error=LimitsPolicyError, kind="limits file")
        top = doc.top(("version", "default", "tools"), name="limits", expects="'version' and 'tools'")
        doc.version(top)
        tools = doc.mapping(top["tools"], "tools", null_ok=True) if "tools" in top else {}
        default = top.get("default")
        return cls(
            tools={name: _parse(doc, f"tools.{name}", raw) for name, raw in tools.items()},
            default=None if default is None else _parse(doc, "default", default),
            source=str(path),
        )

    def for_tool(self, tool: str) -> ToolLimits | None:
        """The windows `tool` is held to, or None when it has no limit."""
        return self.tools.get(tool, self.default)
