"""The price table (`policies/prices.yaml`): what a model call or a tool call costs, in USD."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import yaml
from langchain_core.messages import BaseMessage

from keel.yamlfile import YamlDoc, YamlFileError

__all__ = ["PriceTable", "PriceError", "UnknownPrice", "usd", "usd_up", "estimate_input_tokens"]

_QUANTUM = Decimal("0.00000001")
_TOP_KEYS = ("version", "currency", "models", "tools")
_EMPTY = yaml.ScalarNode("tag:yaml.org,2002:null", "")
PER_MESSAGE_TOKENS = 8
"""Chat-template framing a provider adds around each message (role markers, separators), at most."""


def usd(value: float | Decimal | str) -> Decimal:
    """A USD amount as the ledger stores it: a Decimal with 8 decimal places, rounded half up."""
    return Decimal(str(value)).quantize(_QUANTUM, rounding=ROUND_HALF_UP)


def usd_up(value: float | Decimal | str) -> Decimal:
    """A USD amount rounded up to the ledger's precision (for estimates, which must not fall short)."""
    return Decimal(str(value)).quantize(_QUANTUM, rounding=ROUND_CEILING)


def estimate_input_tokens(messages: Sequence[BaseMessage], tools: Sequence[dict[str, Any]] = ()) -> int:
    """An upper bound of a prompt's tokens, offline: its UTF-8 bytes plus per-message framing.

    Byte-level BPE tokenizers (OpenAI's, and those of the open models vLLM and Ollama serve) never emit
    more than one token per byte, so this bound holds whatever the tokenizer; it over-reserves (about 4x
    for English) and never under-reserves, which is what keeps a settled budget from overdrawing.
    """
    total = len(json.dumps(list(tools), separators=(",", ":"), default=str).encode()) if tools else 0
    for message in messages:
        total += PER_MESSAGE_TOKENS + len(str(message.content).encode())
        if calls := getattr(message, "tool_calls", None):
            total += len(json.dumps(calls, separators=(",", ":"), default=str).encode())
    return total


class PriceError(YamlFileError):
    """The price file is malformed: ``FILE:LINE: reason``."""


def _price(doc: YamlDoc, node: yaml.Node, name: str) -> float:
    value = doc.value(node)
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < math.inf:
        raise doc.fail(node, f"the price of {name!r} must be a non-negative number, got {value!r}")
    return float(value)


class UnknownPrice(KeyError):
    """A model with no price: keel refuses to count it as free. Says both places a price can live."""

    def __init__(self, model: str, source: str = "prices.yaml") -> None:
        super().__init__(model, source)
        self.model, self.source = model, source

    def __str__(self) -> str:
        return (
            f"no price for model {self.model!r} in the price table {self.source}: add "
            f"`{self.model}: {{input: …, output: …}}` under its models:, or price it next to the model in "
            f"keel.yaml (`model: {{id: provider:{self.model}, input: …, output: …}}`), USD per million tokens"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceTable:
    """USD per million input/output tokens per model; USD per call per tool."""

    models: Mapping[str, tuple[float, float]]
    tools: Mapping[str, float]
    source: str = "<memory>"

    @classmethod
    def load(cls, path: Path) -> PriceTable:
        """Read and validate a price file; a mistake names the file, the line and the entry."""
        doc = YamlDoc.load(path, error=PriceError, kind="price file")
        top = doc.top(_TOP_KEYS, name="price table", expects="'version', 'models' and 'tools'")
        doc.version(top)
        models: dict[str, tuple[float, float]] = {}
        for name, node in doc.mapping(top.get("models", _EMPTY), "models", null_ok=True).items():
            price = doc.mapping(node, f"model {name!r}", ("input", "output"))
            if set(price) != {"input", "output"}:
                raise doc.fail(node, f"model {name!r} needs exactly input and output prices")
            models[name] = (_price(doc, price["input"], name), _price(doc, price["output"], name))
        tools = {
            name: _price(doc, node, name)
            for name, node in doc.mapping(top.get("tools", _EMPTY), "tools", null_ok=True).items()
        }
        return cls(models=models, tools=tools, source=str(path))

    def check_model(self, model: str) -> None:
        """Raise UnknownPrice unless `model` has a price."""
        if model not in self.models:
            raise UnknownPrice(model, self.source)

    def with_models(self, models: Mapping[str, tuple[float, float]]) -> PriceTable:
        """This table with `models` priced as given (keel.yaml's prices next to a model win over the file)."""
        return replace(self, models={**self.models, **models}) if models else self

    def model_cost(self, model: str, input_tokens: int, output_tokens: int) -> float:
        """USD for one model call."""
        self.check_model(model)
        inp, out = self.models[model]
        return (input_tokens * inp + output_tokens * out) / 1_000_000

    def model_estimate(
        self,
        model: str,
        messages: Sequence[BaseMessage],
        max_tokens: int,
        tools: Sequence[dict[str, Any]] = (),
    ) -> Decimal:
        """An upper estimate of one model call before it is made: padded prompt count plus `max_tokens`."""
        return usd_up(self.model_cost(model, estimate_input_tokens(messages, tools), max_tokens))

    def model_actual(self, model: str, input_tokens: int, output_tokens: int) -> Decimal:
        """The cost of a finished model call, from its reported usage, at ledger precision."""
        return usd(self.model_cost(model, input_tokens, output_tokens))

    def tool_cost(self, tool: str) -> float:
        """USD for one call of `tool` (the `default` entry when it has none)."""
        return self.tools.get(tool, self.tools.get("default", 0.0))
