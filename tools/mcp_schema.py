"""The args model of an MCP tool: its JSON-schema `inputSchema`, validated strictly, as a pydantic model.

keel's executor validates every call with `spec.args_model.model_validate(args)` and gives the model
`args_model.model_json_schema()`. An MCP tool has no pydantic model, only a JSON schema, so this builds a
model class that validates with `jsonschema` (the schema's own dialect, formats not enforced) and reports
the schema itself. Strict: a property the schema does not declare is refused unless the schema says
`additionalProperties` (a model that invents an argument must not have it passed on to a server).

An `external` tool's `idempotency_key` (keel.tool_effect.IDEMPOTENCY_KEY_ARG) is hidden: removed from the
schema the model sees, refused when the model sends it, and filled by keel with the call's key.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import jsonschema
from pydantic import BaseModel, ConfigDict, model_validator

from keel.tool_effect import IDEMPOTENCY_KEY_ARG

__all__ = ["McpArgs", "args_model_for", "hide_property"]


def hide_property(schema: dict[str, Any], name: str) -> dict[str, Any]:
    """A copy of `schema` without property `name` (and without it among the required)."""
    out = copy.deepcopy(schema)
    out.get("properties", {}).pop(name, None)
    if name in out.get("required", []):
        out["required"] = [r for r in out["required"] if r != name]
    return out


class McpArgs(BaseModel):
    """Validated args of one MCP tool (the fields are the JSON object's keys, read with getattr or
    model_dump)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    input_schema: ClassVar[dict[str, Any]] = {"type": "object"}
    """The schema the model sees (the server's inputSchema, minus a hidden idempotency_key)."""
    hidden: ClassVar[tuple[str, ...]] = ()
    json_validator: ClassVar[Any] = None

    @model_validator(mode="before")
    @classmethod
    def _check(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError("arguments must be a JSON object")
        for name in cls.hidden:
            if name in data:
                raise ValueError(f"{name!r} is set by keel, not by the caller")
        if cls.input_schema.get("additionalProperties") is None:
            unknown = sorted(set(data) - set(cls.input_schema.get("properties", {})))
            if unknown:
                raise ValueError(f"unknown argument(s): {', '.join(unknown)}")
        errors = sorted(cls.json_validator.iter_errors(data), key=lambda e: list(e.absolute_path))
        if errors:
            first = errors[0]
            where = ".".join(map(str, first.absolute_path)) or "arguments"
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise ValueError(f"{where}: {first.message}{more}")
        return data

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        """The JSON schema the model is given: the tool's own, not one pydantic derives."""
        return copy.deepcopy(cls.input_schema)


def args_model_for(name: str, input_schema: dict[str, Any], *, hide_key: bool) -> type[McpArgs]:
    """The args model of MCP tool `name`; `hide_key`: keel fills `idempotency_key` (an `external` tool).
    jsonschema.SchemaError when the server's schema is not a valid JSON schema."""
    shown = hide_property(input_schema, IDEMPOTENCY_KEY_ARG) if hide_key else copy.deepcopy(input_schema)
    shown.setdefault("type", "object")
    shown.setdefault("properties", {})
    cls_validator = jsonschema.validators.validator_for(shown, default=jsonschema.Draft202012Validator)
    cls_validator.check_schema(shown)
    return type(
        f"{name}_args",
        (McpArgs,),
        {
            "input_schema": shown,
            "hidden": (IDEMPOTENCY_KEY_ARG,) if hide_key else (),
            "json_validator": cls_validator(shown),
            "__module__": __name__,
        },
    )
