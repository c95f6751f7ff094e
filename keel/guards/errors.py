"""Guard outcomes as named exceptions, and the one place they map to a run's `terminated_reason`."""

from __future__ import annotations

from dataclasses import dataclass

from keel.budget import BudgetExceeded
from keel.errors import POOL_TIMEOUTS, ToolGuardRefused, describe
from keel.hotstate import HotStateUnavailable
from keel.records import RecordsUnavailable

__all__ = [
    "CircuitOpen",
    "GuardFailure",
    "GuardUnavailable",
    "RateLimited",
    "ToolGuardRefused",
    "STORE_ERRORS",
    "POOL_TIMEOUTS",
    "failure_of",
]


STORE_ERRORS = (HotStateUnavailable, RecordsUnavailable, OSError, *POOL_TIMEOUTS)
"""Errors meaning a guard's store could not be asked: the call is refused (guards fail closed).
A pool timeout is one: classified here, before the fallback chain could take it for a model failure."""


class CircuitOpen(Exception):
    """The circuit breaker of a model or tool is open (or half-open with its probe in flight)."""

    def __init__(self, kind: str, name: str, retry_after_s: float) -> None:
        self.kind, self.name, self.retry_after_s = kind, name, retry_after_s
        super().__init__(
            f"the {kind} {name} is unavailable: its circuit breaker is open after repeated failures; "
            f"retry in {max(retry_after_s, 0.1):.0f} s"
        )


class RateLimited(Exception):
    """A tool call over its rate limit."""

    def __init__(self, tool: str, scope: str, retry_after_s: float) -> None:
        self.tool, self.scope, self.retry_after_s = tool, scope, retry_after_s
        who = "for you" if scope == "per_user" else "for everyone"
        super().__init__(
            f"{tool} is rate-limited {who}; you may retry in {max(retry_after_s, 1.0):.0f} s. "
            "Nothing was executed."
        )


class GuardUnavailable(Exception):
    """A guard could not consult its store; the call was refused rather than allowed unchecked."""

    def __init__(self, what: str, cause: BaseException) -> None:
        super().__init__(f"refused because {what} could not be checked: {type(cause).__name__}: {cause}")


@dataclass(frozen=True, slots=True, kw_only=True)
class GuardFailure:
    """Why a guard stopped the run: the `terminated_reason` and a sentence for the user."""

    reason: str
    message: str


def failure_of(exc: BaseException) -> GuardFailure:
    """Map a guard exception to the run's terminated_reason (the one place this mapping lives)."""
    if isinstance(exc, BudgetExceeded):
        return GuardFailure(reason="budget_exceeded", message=str(exc))
    if isinstance(exc, CircuitOpen):
        return GuardFailure(reason="llm_unavailable", message=str(exc))
    if isinstance(exc, GuardUnavailable):
        return GuardFailure(reason="guard_unavailable", message=str(exc))
    if isinstance(exc, (HotStateUnavailable, RecordsUnavailable, *POOL_TIMEOUTS)):
        return GuardFailure(reason="guard_unavailable", message=describe(exc))
    return GuardFailure(reason="llm_unavailable", message=describe(exc))
