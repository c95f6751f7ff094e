"""A tool from the application's own code: a LangChain tool (`@tool`, StructuredTool, BaseTool) or a plain
typed function, made a keel ToolSpec so it goes through the same checks, guards, audit and exactly-once
rules as the built-ins.

Its args model is the tool's own (`args_schema`, or the function's signature); its resource is the declared
template rendered from the validated args (`order:{order_id}`); a template naming a field the tool has not
is refused here, at start. Effects in this version: `read` and `idempotent` (the executor records every call
by tool_call_id and replays the recorded result on resume); `external` and `transactional` are refused.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from string import Formatter
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel

from keel.tool_effect import ToolEffect
from keel.tools.spec import ToolContext, ToolSpec

__all__ = ["ImportedToolError", "SUPPORTED_EFFECTS", "spec_from_tool", "template_fields"]

SUPPORTED_EFFECTS: tuple[ToolEffect, ...] = ("read", "idempotent")
"""Effects a tool from the application's code may declare in this version."""


class ImportedToolError(ValueError):
    """The object cannot be a keel tool as declared (the reason, without file:line)."""


def template_fields(template: str) -> list[str]:
    """The field names a resource template uses; only plain names (`{order_id}`), no conversions,
    attributes, indexes or format specs."""
    names: list[str] = []
    try:
        parsed = list(Formatter().parse(template))
    except ValueError as exc:
        raise ImportedToolError(f"resource template {template!r}: {exc}") from None
    for _text, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise ImportedToolError(
                f"resource template {template!r}: {{{name}}} must name an argument ({{order_id}})"
            )
        names.append(name)
    return names


def _as_langchain(obj: Any) -> BaseTool:
    if isinstance(obj, BaseTool):
        return obj
    if inspect.isclass(obj) or not callable(obj):
        raise ImportedToolError(
            f"{obj!r} is neither a LangChain tool nor a function (expected @tool, StructuredTool, "
            "BaseTool or a typed function)"
        )
    if not inspect.getdoc(obj):
        raise ImportedToolError(
            f"function {getattr(obj, '__name__', obj)!r} has no docstring (its description)"
        )
    try:
        return StructuredTool.from_function(obj)
    except Exception as exc:  # noqa: BLE001 - LangChain's own reason, reported at start
        raise ImportedToolError(f"cannot make a tool of {obj!r}: {exc}") from None


def _args_model(tool: BaseTool) -> type[BaseModel]:
    schema = tool.get_input_schema()
    if not (inspect.isclass(schema) and issubclass(schema, BaseModel)):
        raise ImportedToolError(f"tool {tool.name!r}: its args schema is not a pydantic model")
    return schema


def _resource_fn(name: str, template: str | None) -> Callable[..., str]:
    if template is None:
        return lambda args, run, ws: name
    fields = template_fields(template)

    def resource(args: BaseModel, run: Any, ws: Any) -> str:
        return template.format_map({f: getattr(args, f) for f in fields})

    return resource


def spec_from_tool(
    obj: Any,
    *,
    effect: ToolEffect,
    resource: str | None = None,
    timeout_s: float | None = None,
) -> ToolSpec:
    """The ToolSpec of a LangChain tool or a typed function; ImportedToolError when it cannot be one."""
    if effect not in SUPPORTED_EFFECTS:
        raise ImportedToolError(
            f"effect {effect!r} is not supported yet for tools by import path "
            f"(supported: {', '.join(SUPPORTED_EFFECTS)})"
        )
    tool = _as_langchain(obj)
    args_model = _args_model(tool)
    if resource is not None:
        missing = [f for f in template_fields(resource) if f not in args_model.model_fields]
        if missing:
            known = ", ".join(args_model.model_fields) or "none"
            raise ImportedToolError(
                f"tool {tool.name!r}: resource template {resource!r} names {', '.join(missing)}, "
                f"which is not an argument (arguments: {known})"
            )
    if not (tool.description or "").strip():
        raise ImportedToolError(f"tool {tool.name!r} has no description")

    async def run(args: BaseModel, ctx: ToolContext) -> str:
        # Only the fields the model set or that have defaults, as the tool itself would validate them.
        result = await tool.ainvoke(args.model_dump(exclude_unset=False))
        return result if isinstance(result, str) else str(result)

    run.__name__ = tool.name
    return ToolSpec(
        name=tool.name,
        description=tool.description,
        args_model=args_model,
        run=run,
        resource=_resource_fn(tool.name, resource),
        timeout_s=timeout_s,
        effect=effect,
        source="python",
        resource_template=resource,
    )
