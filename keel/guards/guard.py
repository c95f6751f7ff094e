"""The one shape every guard has: a class whose `check` reads a view of the step to come and says why
it may not happen (or None). Guards only read; the node that spends reserves and settles."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from keel.context import RunContext

__all__ = ["Guard", "NextCall", "ProposedCall"]

V_contra = TypeVar("V_contra", contravariant=True)


class Guard(Protocol[V_contra]):
    """One rule. Before a model call it reads a `NextCall` and `reason` is a stop reason (a row of
    keel/stop_reasons.py: the run ends with it); before a tool call it reads the executor's
    `ProposedCall` and `reason` is the refusal's kind (the call is refused, the model is told why).

    A store a guard could not read raises (keel.guards.errors.STORE_ERRORS): the step is refused as
    `guard_unavailable`, never allowed unchecked."""

    reason: str

    async def check(self, view: V_contra, /) -> str | None:
        """None when the step may go on; else why not, in a sentence for the user (or the model)."""
        ...


class NextCall:
    """What a guard sees before a model call: the run's state, who runs it, the model it is on, and the
    upper bound of the call's cost (computed on first use: most guards never need it)."""

    def __init__(
        self,
        *,
        state: Mapping[str, Any],
        run: RunContext,
        model: str,
        now: float,
        bound: Callable[[], Decimal],
    ) -> None:
        self.state, self.run, self.model, self.now, self._bound = state, run, model, now, bound

    @functools.cached_property
    def bound(self) -> Decimal:
        """The most the next call can cost (what its reservation will hold)."""
        return self._bound()

    @property
    def spent(self) -> Decimal:
        """What this run has spent so far."""
        return Decimal(str(self.state.get("run_cost", 0.0)))


@dataclass(frozen=True, slots=True, kw_only=True)
class ProposedCall:
    """What a tool-call guard reads: a call the model proposed, before any check (the executor builds it)."""

    name: str
    args: Any
    run: RunContext
    position: int | None = None
    """1-based position among the calls of its model turn; None when re-checked outside its turn."""
