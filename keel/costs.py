"""The price table (`policies/prices.yaml`): what a model call or a tool call costs, in USD."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["PriceTable", "PriceError", "UnknownPrice"]


class PriceError(ValueError):
    """The price file is malformed."""


class UnknownPrice(KeyError):
    """A model with no price: keel refuses to count it as free."""

    def __str__(self) -> str:
        return f"no price for model {self.args[0]!r} in the price table; add it to prices.yaml"


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceTable:
    """USD per million input/output tokens per model; USD per call per tool."""

    models: Mapping[str, tuple[float, float]]
    tools: Mapping[str, float]
    source: str = "<memory>"

    @classmethod
    def load(cls, path: Path) -> PriceTable:
        """Read and validate a price file."""
        try:
            data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise PriceError(f"{path}: cannot read price table: {exc}") from None
        if not isinstance(data, dict) or data.get("version") != 1:
            raise PriceError(f"{path}: expected a mapping with version: 1")
        models: dict[str, tuple[float, float]] = {}
        for name, price in (data.get("models") or {}).items():
            if not isinstance(price, dict) or set(price) != {"input", "output"}:
                raise PriceError(f"{path}: model {name!r} needs exactly input and output prices")
            inp, out = price["input"], price["output"]
            if not all(isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in (inp, out)):
                raise PriceError(f"{path}: model {name!r} prices must be non-negative numbers")
            models[str(name)] = (float(inp), float(out))
        tools: dict[str, float] = {}
        for name, price in (data.get("tools") or {}).items():
            if not isinstance(price, int | float) or isinstance(price, bool) or price < 0:
                raise PriceError(f"{path}: tool {name!r} price must be a non-negative number")
            tools[str(name)] = float(price)
        return cls(models=models, tools=tools, source=str(path))

    def check_model(self, model: str) -> None:
        """Raise UnknownPrice unless `model` has a price."""
        if model not in self.models:
            raise UnknownPrice(model)

    def model_cost(self, model: str, input_tokens: int, output_tokens: int) -> float:
        """USD for one model call."""
        self.check_model(model)
        inp, out = self.models[model]
        return (input_tokens * inp + output_tokens * out) / 1_000_000

    def tool_cost(self, tool: str) -> float:
        """USD for one call of `tool` (the `default` entry when it has none)."""
        return self.tools.get(tool, self.tools.get("default", 0.0))
