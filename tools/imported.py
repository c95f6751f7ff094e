"""A tool from the application's own code: a LangChain tool (`@tool`, StructuredTool, BaseTool) or a plain
typed function, made a keel ToolSpec so it goes through the same checks, guards, audit and exactly-once
rules as the built-ins.

Its args model is what the model may set: the tool's own schema without the arguments keel fills. Its
resource is the declared template rendered from the validated args (`order:{order_id}`); a template naming a
field the model cannot set is refused here, at start. The declared effect decides what keel passes in:

- `read`, `idempotent`: nothing; a recorded result is replayed on resume, a call cut by a crash runs again.
- `external`: the call's idempotency key, the same on every attempt of one call, in a parameter named
  `idempotency_key` (keel.tool_effect.IDEMPOTENCY_KEY_ARG; `<thread_id>:<tool_call_id>`) or LangChain's
  `Annotated[str, InjectedToolCallId]` (the bare tool call id). The tool passes it on to the system it
  changes, so a re-run after a crash is recognised there. Required: an external tool without one is refused.
- `transactional`: keel's records transaction (a SQLAlchemy AsyncConnection) in a parameter named
  `transaction`; the tool writes with it and its write commits with the call's result row, or not at all.
  The tool must be async.

Other injected arguments (LangGraph state, store, ToolRuntime) are ToolNode's, not keel's: refused at start.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from string import Formatter
from typing import Any

from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool, InjectedToolCallId, StructuredTool
from langchain_core.tools.base import get_all_basemodel_annotations
from pydantic import BaseModel, create_model

from keel.tool_effect import IDEMPOTENCY_KEY_ARG, TOOL_EFFECTS, ToolEffect
from keel.tools.spec import ToolContext, ToolSpec

__all__ = ["ImportedToolError", "TRANSACTION_ARG", "spec_from_tool", "template_fields"]

TRANSACTION_ARG = "transaction"
"""The parameter a `transactional` tool takes keel's records transaction in."""


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
        if inspect.iscoroutinefunction(obj):
            return StructuredTool.from_function(coroutine=obj)
        return StructuredTool.from_function(obj)
    except Exception as exc:  # noqa: BLE001 - LangChain's own reason, reported at start
        raise ImportedToolError(f"cannot make a tool of {obj!r}: {exc}") from None


def _is_call_id(annotation: Any) -> bool:
    """`Annotated[str, InjectedToolCallId]`: LangChain fills it with the tool call id."""
    return any(
        isinstance(m, InjectedToolCallId) or (inspect.isclass(m) and issubclass(m, InjectedToolCallId))
        for m in getattr(annotation, "__metadata__", ())
    )


@dataclass(frozen=True, slots=True)
class _Arguments:
    """A tool's parameters, split into what the model sets and what keel fills."""

    model: type[BaseModel]
    """The model-facing args (the schema given to the model, validated by the executor)."""
    call_id: bool
    """It takes the tool call id by LangChain's InjectedToolCallId."""
    key: bool
    """It takes `idempotency_key`."""
    transaction: bool
    """It takes `transaction`."""


def _arguments(tool: BaseTool) -> _Arguments:
    full = tool.get_input_schema()
    visible = tool.tool_call_schema
    for schema in (full, visible):
        if not (inspect.isclass(schema) and issubclass(schema, BaseModel)):
            raise ImportedToolError(f"tool {tool.name!r}: its args schema is not a pydantic model")
    annotations = get_all_basemodel_annotations(full)
    call_id = False
    for name in full.model_fields:
        if name in visible.model_fields or name in (IDEMPOTENCY_KEY_ARG, TRANSACTION_ARG):
            continue
        if not _is_call_id(annotations.get(name)):
            raise ImportedToolError(
                f"tool {tool.name!r}: argument {name!r} is injected by LangGraph's ToolNode (state, store, "
                f"runtime), which keel does not run; keel fills only {IDEMPOTENCY_KEY_ARG!r}, "
                f"{TRANSACTION_ARG!r} and an InjectedToolCallId"
            )
        call_id = True
    filled = {IDEMPOTENCY_KEY_ARG, TRANSACTION_ARG} & set(visible.model_fields)
    model = visible
    if filled:
        fields: dict[str, Any] = {
            name: (info.annotation, info) for name, info in visible.model_fields.items() if name not in filled
        }
        model = create_model(visible.__name__, __config__=visible.model_config, **fields)
    return _Arguments(
        model=model,
        call_id=call_id,
        key=IDEMPOTENCY_KEY_ARG in full.model_fields,
        transaction=TRANSACTION_ARG in full.model_fields,
    )


def _check_effect(tool: BaseTool, effect: ToolEffect, args: _Arguments) -> None:
    """What the effect needs from the tool, and what it may not take."""
    if effect == "external" and not (args.key or args.call_id):
        raise ImportedToolError(
            f"tool {tool.name!r} is external: it must take the call's idempotency key to pass on "
            f"(add a parameter `{IDEMPOTENCY_KEY_ARG}: str`; keel fills it and the model never sees it)"
        )
    if args.transaction and effect != "transactional":
        raise ImportedToolError(
            f"tool {tool.name!r} takes {TRANSACTION_ARG!r}, which keel gives only to a tool declared "
            f"'transactional' (declared {effect!r})"
        )
    if effect == "transactional":
        if not args.transaction:
            raise ImportedToolError(
                f"tool {tool.name!r} is transactional: it must take keel's records transaction (add a "
                f"parameter `{TRANSACTION_ARG}: AsyncConnection` and write with it)"
            )
        if isinstance(tool, StructuredTool) and tool.coroutine is None:
            raise ImportedToolError(
                f"tool {tool.name!r} is transactional: it must be async (it writes in keel's async "
                "records transaction)"
            )


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
    if effect not in TOOL_EFFECTS:
        raise ImportedToolError(f"unknown effect {effect!r} (expected: {', '.join(TOOL_EFFECTS)})")
    tool = _as_langchain(obj)
    arguments = _arguments(tool)
    _check_effect(tool, effect, arguments)
    args_model = arguments.model
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
        values = args.model_dump()
        if arguments.key:
            values[IDEMPOTENCY_KEY_ARG] = ctx.idempotency_key
        if arguments.transaction:
            values[TRANSACTION_ARG] = ctx.conn
        # As a ToolCall, so that LangChain fills an InjectedToolCallId argument itself.
        call = {"type": "tool_call", "id": ctx.tool_call_id, "name": tool.name, "args": values}
        result = await tool.ainvoke(call)
        if isinstance(result, ToolMessage):
            return result.text
        return result if isinstance(result, str) else str(result)

    run.__name__ = tool.name
    return ToolSpec(
        name=tool.name,
        description=tool.description,
        args_model=args_model,
        run=run,
        resource=_resource_fn(tool.name, resource),
        timeout_s=timeout_s,
        transactional=effect == "transactional",
        effect=effect,
        source="python",
        resource_template=resource,
    )
