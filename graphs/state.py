"""The agent's state: what flows through the graph and is checkpointed.

Data, not wiring: the nodes and the edges read and write it and it imports neither, so the import contract
(`.importlinter`) lists it as its own layer below them. It stays in graphs/ next to the wiring that declares
it as the graph's schema (`StateGraph(AgentState, ...)`), as LangGraph's templates keep `state.py`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from pydantic import ConfigDict, with_config
from typing_extensions import TypedDict  # pydantic (Studio's schemas) needs it on Python < 3.12

_DOCS = ConfigDict(use_attribute_docstrings=True)  # field docstrings become schema descriptions

__all__ = ["InputState", "AgentState", "PendingCall", "CallStatus", "TerminatedReason"]

CallStatus = Literal["new", "allowed", "ask", "done"]
TerminatedReason = str
"""A key of keel.stop_reasons.STOP_REASONS (a guard defined outside keel registers its own)."""


@with_config(_DOCS)
class PendingCall(TypedDict, total=False):
    """One tool call of the current model turn and what has been decided about it."""

    id: str
    """The model's tool_call_id."""
    name: str
    """The tool the model asked for."""
    args: dict[str, Any]
    """The arguments to run with (the approver's edit replaces the model's)."""
    status: CallStatus
    """new: not checked yet; allowed: will run; ask: waits for approval; done: answered."""
    resource: str
    """The resource string the permission matrix was asked about."""
    rule: str
    """The matched rule, explained."""
    approved_by: str
    """The approver, for a call that went through approval."""
    audit_with_result: bool
    """The permission decision (allow) is not recorded yet: its audit row is written with the call's
    result, in the tool step's one transaction."""


@with_config(_DOCS)
class InputState(TypedDict):
    """What a caller sends: the conversation so far (normally one new human message)."""

    messages: Annotated[list[AnyMessage], add_messages]
    """Messages of the conversation; new ones are appended."""


@with_config(_DOCS)
class AgentState(InputState, total=False):
    """The full state of a run, checkpointed after every step."""

    execution_id: str
    """The execution this state belongs to (copied from the run context by recall)."""
    task: str
    """The latest human request, as text."""
    recalled: list[str]
    """What recall found worth remembering for this task."""
    plan: str
    """The model's short plan for the task."""
    steps: int
    """Model turns taken in this run."""
    run_cost: float
    """USD spent by this run so far."""
    input_tokens: int
    """Prompt tokens used by this run."""
    output_tokens: int
    """Completion tokens used by this run."""
    cached_model_calls: int
    """Model answers this run took from the response cache (no call made, nothing charged)."""
    started_at: float
    """Run start, seconds since the epoch."""
    deadline: float
    """Run deadline, seconds since the epoch."""
    pending: list[PendingCall]
    """Tool calls of the current model turn and their decisions."""
    tools_used: list[str]
    """Tools executed successfully in this run."""
    tools_failed: list[str]
    """Tools that ran and failed or timed out in this run."""
    tools_refused: list[str]
    """Tools whose calls were refused in this run: invalid, denied by policy, rejected or expired."""
    owed_charges: list[dict[str, str]]
    """Model calls that answered while the records database refused their settlement: charged as soon
    as it is back (before the next model call, at the latest when the run finalizes)."""
    model_index: int
    """Position in the fallback chain of the model this run is on (0: the primary)."""
    terminated_reason: TerminatedReason | None
    """Why the run stopped early; None when it finished normally."""
    error: str | None
    """What went wrong when the model or a store failed (already redacted)."""
    status: str
    """Final status: succeeded, terminated or failed."""
    answer: str
    """The final answer, filtered for secrets and personal data."""
