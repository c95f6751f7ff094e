"""The run's identity: LangGraph runtime context, set by the caller, never by the model or graph input."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from keel.ids import ID_RULE, is_id

__all__ = ["RunContext", "InvalidContext", "TaskTooLarge", "check_task_size"]


class InvalidContext(ValueError):
    """A run context field is missing or malformed."""


class TaskTooLarge(InvalidContext):
    """A task over `KEEL_MAX_TASK_CHARS` or the model's context budget: refused, never cut."""


def check_task_size(task: str, limit: int) -> None:
    """Refuse a task over `limit` characters before anything is stored (a cut task would run silently)."""
    if len(task) > limit:
        raise TaskTooLarge(
            f"the task is {len(task):,} characters; the limit is {limit:,} (KEEL_MAX_TASK_CHARS)"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RunContext:
    """Who runs this agent and under which version. Given as `context=` to the graph."""

    user_id: str = field(metadata={"description": "The user the run acts for (from auth or CLI flags)."})
    """The user the run acts for."""
    role: str = field(default="user", metadata={"description": "Role looked up in the permission matrix."})
    """Role looked up in the permission matrix."""
    tenant: str = field(default="default", metadata={"description": "Tenant that owns the user."})
    """Tenant that owns the user."""
    execution_id: str = field(
        default_factory=lambda: str(uuid.uuid4()),
        metadata={"description": "Id of this execution (one per run request)."},
    )
    """Id of this execution; a resumed run keeps its execution id."""
    version: str = field(
        default="",
        metadata={"description": "Agent version of this run (set by the runtime, not the client)."},
    )
    """Agent version of this run (`<name>@<hash>`, keel.app.versions). Empty: the caller sets none, and
    the runtime running the agent (Keel, the guarded agent, the server) fills in its own version's id."""

    def __post_init__(self) -> None:
        for name in ("user_id", "role", "tenant", "execution_id", "version"):
            value = getattr(self, name)
            if name == "version" and value == "":
                continue
            if not is_id(value):
                raise InvalidContext(f"run context {name}={value!r} is invalid: {ID_RULE}")
