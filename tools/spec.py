"""How a tool is declared: its schema, resource, timeout and whether its effect is a records write.

What a call costs is in the price table (policies/prices.yaml), not here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from keel.errors import ToolGuardRefused, ToolInputError
from keel.tool_effect import ToolEffect

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from keel.context import RunContext
    from keel.records import Records
    from keel.tools.workspace import Workspace

__all__ = ["ToolSpec", "ToolContext", "ToolInputError", "ToolGuardRefused", "idempotency_key"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolContext:
    """What a running tool may use; built by the executor, never by the model."""

    run: RunContext
    thread_id: str
    tool_call_id: str
    workspace: Workspace
    records: Records
    conn: AsyncConnection | None = None
    """The open records transaction, for tools whose effect is a records write."""

    @property
    def idempotency_key(self) -> str:
        """The key an `external` tool passes on to the system it changes: the same for every attempt of
        one call (a re-run after a crash sends the same key), different for every other call."""
        return idempotency_key(self.thread_id, self.tool_call_id)


def idempotency_key(thread_id: str, tool_call_id: str) -> str:
    """`<thread_id>:<tool_call_id>`: tool call ids are unique within a thread, not across threads."""
    return f"{thread_id}:{tool_call_id}"


ToolFn = Callable[[Any, ToolContext], Awaitable[str]]
ResourceFn = Callable[[Any, "RunContext", "Workspace"], str]


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolSpec:
    """A tool: pydantic args model, the resource the permission matrix is asked about, its timeout."""

    name: str
    description: str
    args_model: type[BaseModel]
    run: ToolFn
    resource: ResourceFn
    """Maps validated args to a resource string (`own:<path>`, `email:<address>`, …)."""
    transactional: bool = False
    """Its effect is a records write, committed in one transaction with its tool_results row."""
    timeout_s: float | None = None
    """Per-tool timeout; the settings default (30 s) when None."""
    effect: ToolEffect = "idempotent"
    """What a call does (keel.tool_effect): `read` and `idempotent` tools run as they are; a recorded
    result is replayed on resume either way."""
    source: str = "builtin"
    """Where the tool came from: `builtin`, `python` (by import path from keel.yaml), `mcp`."""
    resource_template: str | None = None
    """The declared resource template (`order:{order_id}`) of a tool from keel.yaml."""

    def schema(self) -> dict[str, Any]:
        """The OpenAI function-tool schema given to `bind_tools`."""
        params = self.args_model.model_json_schema()
        params.pop("title", None)
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": params},
        }
