"""Why a run stopped early: the one table of `terminated_reason` values, their outcome and their words.

Every reader uses it: the fallback node (what the user is told), the CLI (exit codes and their help
text), the drills (which reasons a user can be told about). A new guard adds its row here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

__all__ = [
    "StopReason",
    "STOP_REASONS",
    "KEEL_STOP_REASONS",
    "EXIT_SUCCEEDED",
    "EXIT_ERROR",
    "EXIT_USAGE",
    "EXIT_AWAITING_APPROVAL",
    "EXIT_TERMINATED",
    "EXIT_UNAVAILABLE",
    "EXIT_TOOLS_REFUSED",
    "register_stop_reason",
    "stop_reason",
    "stop_text",
]

Outcome = Literal["terminated", "unavailable", "refused"]

EXIT_SUCCEEDED = 0
EXIT_ERROR = 1
"""The request was refused or keel could not start (bad input, unknown thread, store down at start)."""
EXIT_USAGE = 2
"""A bad option, a missing argument, an unknown command: nothing ran."""
EXIT_AWAITING_APPROVAL = 3
EXIT_TERMINATED = 4
"""A guard or limit stopped the run."""
EXIT_UNAVAILABLE = 5
"""A dependency failed mid-run: nothing is lost, resume once it is back."""
EXIT_TOOLS_REFUSED = 6
"""The run answered, but every tool call it attempted was denied, rejected or failed."""

_EXIT_CODES: Mapping[Outcome, int] = {
    "terminated": EXIT_TERMINATED,
    "unavailable": EXIT_UNAVAILABLE,
    "refused": EXIT_TOOLS_REFUSED,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class StopReason:
    """One `terminated_reason`: its outcome class (which fixes the CLI's exit code) and its words."""

    name: str
    outcome: Outcome
    text: str
    """What the user is told, a `str.format` template over: resume (the sentence naming the thread to
    resume), error (the guard's or the failure's own words, redacted), max_steps, run_timeout_s,
    run_cost_cap (from the settings in force)."""
    falls_back: bool = False
    """The run moves to the next model of the fallback chain before it stops for this reason."""

    @property
    def exit_code(self) -> int:
        return _EXIT_CODES[self.outcome]


_RESUME_WHEN_BACK = "Progress is saved: resume with thread {thread} once it is back."

_TABLE: dict[str, StopReason] = {
    r.name: r
    for r in (
        StopReason(
            name="max_steps",
            outcome="terminated",
            text="I reached the limit of {max_steps} steps before finishing. {resume}",
        ),
        StopReason(
            name="timeout",
            outcome="terminated",
            text="I ran out of time ({run_timeout_s:.0f} s for a run) before finishing. {resume}",
        ),
        StopReason(
            name="run_cost_cap",
            outcome="terminated",
            text="This run reached its cost cap of ${run_cost_cap:.4f}. {resume}",
        ),
        StopReason(
            name="budget_exceeded",
            outcome="terminated",
            text="I stopped because {error_or_budget}. {resume}",
        ),
        StopReason(
            name="llm_unavailable",
            outcome="unavailable",
            text="The assistant's model is unavailable right now{cause}, so I could not finish your "
            "request. {resume} Please try again later.",
            falls_back=True,
        ),
        StopReason(
            name="guard_unavailable",
            outcome="unavailable",
            text="I stopped because a safety check could not run ({error_or_unknown}). " + _RESUME_WHEN_BACK,
        ),
        StopReason(
            name="tools_refused",
            outcome="refused",
            text="{error_or_refused}",
        ),
    )
}
KEEL_STOP_REASONS = frozenset(_TABLE)
"""The reasons keel's own guards and nodes stop with (the CLI's help text lists these)."""
STOP_REASONS: Mapping[str, StopReason] = MappingProxyType(_TABLE)
"""Every `terminated_reason` a run can end with. `tools_refused` is set by finalize (status `failed`):
the model answered but every tool call it attempted was denied, rejected or failed."""


def register_stop_reason(row: StopReason) -> StopReason:
    """Add the row of a guard defined outside keel (keel's own guards have theirs above). Registering
    the same row again is a no-op; another row under a taken name is refused."""
    if (known := _TABLE.get(row.name)) is not None and known != row:
        raise ValueError(f"stop reason {row.name!r} is already defined as {known}")
    _TABLE[row.name] = row
    return row


def stop_reason(name: str | None) -> StopReason:
    """The row of `name`; a reason nobody registered is a bug, reported as the model being unavailable
    would hide it, so it raises."""
    if name is None or name not in STOP_REASONS:
        raise KeyError(f"unknown stop reason {name!r}: add it to keel/stop_reasons.py")
    return STOP_REASONS[name]


def stop_text(name: str, *, thread: str, error: str | None, limits: Mapping[str, Any]) -> str:
    """What the user is told when a run stops for `name` on `thread` (`error` already redacted)."""
    return stop_reason(name).text.format(
        thread=thread,
        resume=f"Progress is saved: resume with thread {thread}.",
        error=error or "",
        cause=f" ({error})" if error else "",
        error_or_budget=error or "your budget has no room for another step",
        error_or_unknown=error or "unknown cause",
        error_or_refused=error or "every tool call of this run was refused",
        **limits,
    )
