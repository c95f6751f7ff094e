"""The project config, `keel.yaml`: which agent runs, on which model, with which tools, under which policy.

Read through keel.yamlfile, so every problem is ``FILE:LINE: reason`` and an unknown key (a typo) fails at
start. Paths in it (`agent.prompt`, `policy`, `prices`, `limits`) are relative to the config file. Found by
`--config PATH`, else `KEEL_CONFIG`, else `./keel.yaml`; with none, keel runs as before (its built-in tools).

This module only reads and checks the file; keel.tools.from_config turns its `tools` into a registry and
`apply` gives the settings it overrides.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from keel.models import split_model_id
from keel.prompts import PromptFileError, load_instructions
from keel.settings import Settings
from keel.tool_effect import TOOL_EFFECTS, ToolEffect
from keel.yamlfile import YamlDoc, YamlFileError, line_of

__all__ = [
    "ConfigError",
    "KeelConfig",
    "AgentConfig",
    "CacheConfig",
    "ToolEntry",
    "McpServer",
    "CONFIG_ENV",
    "CONFIG_FILE",
    "find_config",
    "load_config",
]

CONFIG_ENV = "KEEL_CONFIG"
CONFIG_FILE = "keel.yaml"
_KIND = "config file"
_TOP_KEYS = ("agent", "model", "fallback_models", "tools", "policy", "prices", "limits", "cache")
_CACHE_KEYS = ("model_ttl_s", "tool_ttl_s")
"""`cache:`: seconds a model answer / a `read` tool's result is kept (settings `cache_model_ttl_s`,
`cache_tool_ttl_s`; 0: off)."""
_AGENT_KEYS = ("name", "version", "prompt", "plan")
_SOURCES = ("import", "builtin", "mcp")
_TOOL_KEYS = (*_SOURCES, "effect", "resource", "timeout_s", "price_usd")
_MCP_KEYS = ("name", "command", "args", "env", "url", "tools")
_MODEL_KEYS = ("id", "input", "output")
"""A model written as a mapping: its `provider:model` id and its prices, USD per million input/output tokens
(the field names of the prices file's `models:` entries)."""


class ConfigError(YamlFileError):
    """The project config is unreadable or invalid: ``<file>:<line>: <reason>``."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentConfig(_Strict):
    name: str = Field(default="keel", min_length=1)
    version: str | None = None
    """Recorded with every execution (the settings' `version` when unset)."""
    prompt: Path | None = None
    """The system prompt file, relative to the config file."""
    plan: bool | None = None
    """Whether the plan node asks for a plan first (the settings' `plan_enabled` when unset)."""


class McpServer(_Strict):
    """One MCP server: stdio (`command`, `args`, `env`) or streamable HTTP (`url`); neither: the server
    another entry defines, by name (so its tools can take another effect or resource)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_-]+$")
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = Field(default_factory=dict)
    url: str | None = Field(default=None, pattern=r"^https?://")
    tools: tuple[str, ...] | None = Field(default=None, min_length=1)
    """The server's tools this entry declares; None: all of them."""


class CacheConfig(_Strict):
    """`cache:`: the response cache's and the tool result cache's time to live, in seconds (0: off)."""

    model_ttl_s: float | None = Field(default=None, ge=0)
    tool_ttl_s: float | None = Field(default=None, ge=0)


class ToolEntry(_Strict):
    """One entry of `tools:`; exactly one of `import`, `builtin`, `mcp`."""

    source: str
    """`python` (import), `builtin`, `mcp`."""
    target: str
    """`module:attr` (python), the built-in's name, the MCP server's name."""
    effect: ToolEffect | None = None
    """Required for python and MCP tools; a built-in declares its own."""
    resource: str | None = None
    """Template over the tool's args, e.g. `order:{order_id}`; the tool's name when unset."""
    timeout_s: float | None = Field(default=None, gt=0)
    price_usd: float | None = Field(default=None, ge=0)
    mcp: McpServer | None = None
    line: int = 0
    """Where the entry starts in the config file."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KeelConfig:
    """A validated `keel.yaml`."""

    path: Path
    """Absolute path of the file."""
    agent: AgentConfig = field(default_factory=AgentConfig)
    model: str | None = None
    """`provider:model`."""
    fallback_models: tuple[str, ...] = ()
    """`provider:model` each, in order."""
    model_prices: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    """Prices given next to a model: bare model name -> (input, output) USD per million tokens."""
    model_lines: Mapping[str, int] = field(default_factory=dict)
    """Where each model (`provider:model`) is written, for errors found when it is built at start."""
    instructions: str | None = None
    """The text of `agent.prompt`, read when the config is loaded."""
    tools: tuple[ToolEntry, ...] | None = None
    """None: the key is absent, keel's built-in tools."""
    policy: Path | None = None
    prices: Path | None = None
    limits: Path | None = None
    cache: CacheConfig = field(default_factory=CacheConfig)

    @property
    def source(self) -> str:
        return str(self.path)

    def model_line(self, model: str) -> int:
        """The line of a model (`provider:model` or its bare name) in this file; 0 when it is not here."""
        for model_id, line in self.model_lines.items():
            if model in (model_id, model_id.partition(":")[2]):
                return line
        return 0

    def error(self, line: int, reason: str) -> ConfigError:
        """An error pointing at a line of this file."""
        return ConfigError(self.source, line, reason)

    def apply(self, settings: Settings) -> Settings:
        """The settings with what this config sets (policy, prices, limits, model, plan, version)."""
        update: dict[str, Any] = {}
        for key, attr in (
            ("policy_file", self.policy),
            ("prices_file", self.prices),
            ("limits_file", self.limits),
        ):
            if attr is not None:
                update[key] = attr
        if self.model is not None:
            provider, _, name = self.model.partition(":")
            update["model_provider"], update["model"] = provider, name
        if self.fallback_models:
            update["fallback_models"] = list(self.fallback_models)
        if self.agent.prompt is not None:
            update["prompt_file"] = self.agent.prompt
        if self.agent.plan is not None:
            update["plan_enabled"] = self.agent.plan
        if self.agent.version is not None:
            update["version"] = self.agent.version
        if self.cache.model_ttl_s is not None:
            update["cache_model_ttl_s"] = self.cache.model_ttl_s
        if self.cache.tool_ttl_s is not None:
            update["cache_tool_ttl_s"] = self.cache.tool_ttl_s
        return settings.model_copy(update=update) if update else settings


def find_config(explicit: str | Path | None = None, *, cwd: Path | None = None) -> Path | None:
    """The config to use: `explicit`, else `$KEEL_CONFIG`, else `./keel.yaml` when it exists; None: none.
    A config named explicitly or by the variable must exist (ConfigError otherwise)."""
    named = explicit if explicit is not None else os.environ.get(CONFIG_ENV) or None
    if named is not None:
        path = Path(named)
        if not path.is_file():
            origin = "--config" if explicit is not None else CONFIG_ENV
            raise ConfigError(str(path), 0, f"no config file there (named by {origin})")
        return path
    local = (cwd or Path.cwd()) / CONFIG_FILE
    return local if local.is_file() else None


def load_config(path: str | Path) -> KeelConfig:
    """Read and validate a `keel.yaml`; raises ConfigError (``FILE:LINE: reason``)."""
    doc = YamlDoc.load(path, error=ConfigError, kind=_KIND)
    return _Parser(doc, Path(path).absolute()).config()


def _pydantic_reason(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors())


class _Parser:
    def __init__(self, doc: YamlDoc, path: Path) -> None:
        self.doc, self.path, self.base = doc, path, path.parent
        self.prices: dict[str, tuple[float, float]] = {}
        self.lines: dict[str, int] = {}
        self.names: dict[str, str] = {}
        """Bare model name -> the id that uses it (prices, breakers and metrics go by the bare name)."""
        self.prompt_line = 1

    def config(self) -> KeelConfig:
        top = self.doc.top(_TOP_KEYS, name="config", expects=", ".join(repr(k) for k in _TOP_KEYS))
        tools = None
        if "tools" in top:
            nodes = self.doc.sequence(top["tools"], "tools")
            tools = tuple(self.tool(n) for n in nodes)
            self.mcp_defined(tools, nodes)
        agent = self.agent(top["agent"]) if "agent" in top else AgentConfig()
        instructions = None
        if agent.prompt is not None:
            try:
                instructions = load_instructions(agent.prompt)
            except PromptFileError as exc:
                raise self.doc.fail(self.prompt_line, str(exc)) from None
        model = self.model(top["model"]) if "model" in top else None
        fallbacks = (
            tuple(self.model(n) for n in self.doc.sequence(top["fallback_models"], "fallback_models"))
            if "fallback_models" in top
            else ()
        )
        return KeelConfig(
            path=self.path,
            agent=agent,
            model=model,
            fallback_models=fallbacks,
            model_prices=self.prices,
            model_lines=self.lines,
            instructions=instructions,
            tools=tools,
            policy=self.file(top["policy"], "policy") if "policy" in top else None,
            prices=self.file(top["prices"], "prices") if "prices" in top else None,
            limits=self.file(top["limits"], "limits") if "limits" in top else None,
            cache=self.cache(top["cache"]) if "cache" in top else CacheConfig(),
        )

    def string(self, node: yaml.Node, what: str) -> str:
        value = self.doc.value(node)
        if not isinstance(value, str) or not value.strip():
            raise self.doc.fail(node, f"{what} must be a non-empty string, not {value!r}")
        return value

    def file(self, node: yaml.Node, what: str) -> Path:
        """A path relative to the config file, which must exist."""
        path = self.base / self.string(node, what)
        if not path.is_file():
            raise self.doc.fail(node, f"{what}: no file at {path}")
        return path

    def model(self, node: yaml.Node) -> str:
        """`provider:model`, or a mapping `{id: provider:model, input: …, output: …}` pricing it. The
        provider is checked when the model is built at start (keel.models), at this line."""
        prices: tuple[float, float] | None = None
        if isinstance(node, yaml.MappingNode):
            entries = self.doc.mapping(node, "model", _MODEL_KEYS)
            if "id" not in entries:
                raise self.doc.fail(node, "model: needs an 'id' (provider:model, e.g. openai:gpt-4o-mini)")
            value = self.string(entries["id"], "model id")
            priced = [k for k in ("input", "output") if k in entries]
            if priced and len(priced) != 2:
                raise self.doc.fail(
                    node, f"model {value!r} needs both input and output prices (USD per million tokens)"
                )
            if priced:
                prices = (self.price(entries["input"], value), self.price(entries["output"], value))
        else:
            value = self.string(node, "model")
        try:
            _, name = split_model_id(value)
        except ValueError as exc:
            raise self.doc.fail(node, str(exc)) from None
        if name in self.names:
            raise self.doc.fail(
                node,
                f"model {value!r}: {self.names[name]!r} has the same name {name!r}; keel prices, meters and "
                "breaks models by name, so the chain's names must differ",
            )
        self.names[name], self.lines[value] = value, line_of(node)
        if prices is not None:
            self.prices[name] = prices
        return value

    def price(self, node: yaml.Node, model: str) -> float:
        value = self.doc.value(node)
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < math.inf:
            raise self.doc.fail(node, f"the price of {model!r} must be a non-negative number, got {value!r}")
        return float(value)

    def cache(self, node: yaml.Node) -> CacheConfig:
        entries = self.doc.mapping(node, "cache", _CACHE_KEYS)
        values = {k: self.doc.value(v) for k, v in entries.items()}
        return self.model_of(CacheConfig, values, node, entries)

    def agent(self, node: yaml.Node) -> AgentConfig:
        entries = self.doc.mapping(node, "agent", _AGENT_KEYS)
        values: dict[str, Any] = {k: self.doc.value(v) for k, v in entries.items() if k != "prompt"}
        if "prompt" in entries:
            values["prompt"] = self.file(entries["prompt"], "agent.prompt")
            self.prompt_line = line_of(entries["prompt"])
        return self.model_of(AgentConfig, values, node, entries)

    def tool(self, node: yaml.Node) -> ToolEntry:
        entries = self.doc.mapping(node, "tool entry", _TOOL_KEYS)
        sources = [k for k in _SOURCES if k in entries]
        if len(sources) != 1:
            raise self.doc.fail(node, "a tool entry needs exactly one of 'import', 'builtin', 'mcp'")
        kind = sources[0]
        values: dict[str, Any] = {
            k: self.doc.value(v) for k, v in entries.items() if k not in _SOURCES and k != "effect"
        }
        values["line"] = line_of(node)
        if "effect" in entries:
            effect = self.doc.value(entries["effect"])
            if effect not in TOOL_EFFECTS:
                raise self.doc.fail(
                    entries["effect"], f"unknown effect {effect!r} (expected: {', '.join(TOOL_EFFECTS)})"
                )
            values["effect"] = effect
        elif kind != "builtin":
            raise self.doc.fail(
                node, f"tool entry has no 'effect' (declare one of: {', '.join(TOOL_EFFECTS)})"
            )
        if kind == "mcp":
            server_entries = self.doc.mapping(entries["mcp"], "mcp", _MCP_KEYS)
            server = self.model_of(
                McpServer,
                {k: self.doc.value(v) for k, v in server_entries.items()},
                entries["mcp"],
                server_entries,
            )
            if server.command is not None and server.url is not None:
                raise self.doc.fail(
                    entries["mcp"], "mcp needs one of 'command' (stdio) or 'url' (HTTP), not both"
                )
            if server.command is None and server.url is None and (server.args or server.env):
                raise self.doc.fail(entries["mcp"], "mcp 'args' and 'env' need a 'command'")
            values.update(source="mcp", target=server.name, mcp=server)
        elif kind == "import":
            target = self.string(entries["import"], "import")
            module, sep, attr = target.partition(":")
            if not sep or not module or not attr:
                raise self.doc.fail(entries["import"], f"import {target!r}: expected module:attr")
            values.update(source="python", target=target)
        else:
            values.update(source="builtin", target=self.string(entries["builtin"], "builtin"))
        return self.model_of(ToolEntry, values, node, entries)

    def mcp_defined(self, tools: tuple[ToolEntry, ...], nodes: list[yaml.Node]) -> None:
        """An `mcp:` entry naming a server alone needs another entry that defines it."""
        defined = {e.target for e in tools if e.mcp is not None and (e.mcp.command or e.mcp.url)}
        for entry, node in zip(tools, nodes, strict=True):
            if entry.mcp is not None and entry.target not in defined:
                raise self.doc.fail(
                    node,
                    f"mcp server {entry.target!r} is not defined: give one entry one of 'command' (stdio) "
                    "or 'url' (HTTP)",
                )

    def model_of(
        self, cls: type[_Strict], values: dict[str, Any], node: yaml.Node, entries: dict[str, yaml.Node]
    ) -> Any:
        """`cls` built from `values`; a bad value fails at its own line."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            first = exc.errors()[0]["loc"]
            at = entries.get(str(first[0])) if first else None
            raise self.doc.fail(at or node, f"{cls.__name__}: {_pydantic_reason(exc)}") from None
