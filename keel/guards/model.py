"""The spending side of a model call: breaker probe or pass, budget reservation, settle or release."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection

from keel.budget import BudgetLedger, Reservation
from keel.guards.errors import STORE_ERRORS, CircuitOpen, GuardUnavailable
from keel.hotstate import BreakerConfig, BreakerDecision, BreakerStore
from keel.observability.metrics import record_breaker_state

__all__ = ["ModelGate", "model_gate", "owed_charge", "owed_reservation", "owed_charges", "settle_owed"]


@dataclass(slots=True, kw_only=True)
class ModelGate:
    """One admitted model call. Call `settle(cost)` when it answered; `fault()` when the model failed.

    After the block: `overrun` says the actual cost passed the reservation's bound; `owed` holds the
    call's charge, to be settled by the next records transaction of the run (the next call's
    reservation, the tool step's result row, the execution record): the caller keeps it in the run's
    state until then, so a model call costs the ledger one transaction and an answered call is never
    left uncharged.
    """

    actual: Decimal | None = None
    faulted: bool = False
    reservation: Reservation | None = None
    owed: dict[str, str] | None = None
    decision: BreakerDecision | None = field(default=None, repr=False)

    @property
    def overrun(self) -> bool:
        """The call cost more than its reservation held."""
        res = self.reservation
        return res is not None and self.actual is not None and self.actual > res.estimate

    def settle(self, cost: Decimal) -> None:
        self.actual = cost

    def fault(self) -> None:
        """The model itself failed (error, per-request timeout): counts against its breaker."""
        self.faulted = True


@asynccontextmanager
async def model_gate(
    *,
    ledger: BudgetLedger,
    breakers: BreakerStore,
    config: BreakerConfig,
    model: str,
    user_id: str,
    thread_id: str,
    execution_id: str,
    estimate: Decimal,
    owed: Sequence[Mapping[str, str]] = (),
) -> AsyncIterator[ModelGate]:
    """Admit one model call or raise (CircuitOpen, BudgetExceeded, GuardUnavailable).

    The breaker is asked first (one hot-state round trip), then the estimate is reserved in one DB
    transaction that first settles what earlier calls of the run still owe (`owed`, from the run's
    state). On exit an answered call's charge is handed back as `gate.owed` (settled by the run's next
    transaction); a failed or cancelled call's reservation is released; the breaker learns the outcome.
    """
    try:
        decision = await breakers.acquire(f"model:{model}", config)
    except STORE_ERRORS as exc:
        raise GuardUnavailable(f"the circuit breaker of model {model}", exc) from exc
    if not decision.allowed:
        raise CircuitOpen("model", model, decision.retry_after_s)
    gate = ModelGate(decision=decision)
    reservation: Reservation | None = None
    try:
        try:
            reservation = gate.reservation = await ledger.reserve(
                user_id=user_id,
                thread_id=thread_id,
                execution_id=execution_id,
                kind="model",
                name=model,
                estimate=estimate,
                settle_first=owed_charges(owed),
            )
        except STORE_ERRORS as exc:
            raise GuardUnavailable(f"the budget of user {user_id}", exc) from exc
        yield gate
    except BaseException:
        if reservation is not None:
            with contextlib.suppress(*STORE_ERRORS):  # left reserved; release_open clears it on resume
                await asyncio.shield(ledger.release(reservation, "call failed or cancelled"))
        await _tell_breaker(breakers, config, model, gate, decision)
        raise
    if reservation is not None:
        if gate.actual is None:
            await ledger.release(reservation, "no usage reported")
        else:  # the model answered: settled by the run's next transaction, never forgotten
            gate.owed = owed_charge(reservation, gate.actual)
    await _tell_breaker(breakers, config, model, gate, decision)


def owed_charge(res: Reservation, actual: Decimal) -> dict[str, str]:
    """A settlement the ledger could not take, as plain data the run's checkpoint can hold."""
    return {
        "reservation_id": res.reservation_id,
        "user_id": res.user_id,
        "month": res.month,
        "name": res.name,
        "estimate": str(res.estimate),
        "actual": str(actual),
    }


def owed_reservation(owed: dict[str, str]) -> tuple[Reservation, Decimal]:
    """The reservation and the actual cost of an owed charge."""
    res = Reservation(
        reservation_id=owed["reservation_id"],
        user_id=owed["user_id"],
        month=owed["month"],
        kind="model",
        name=owed["name"],
        estimate=Decimal(owed["estimate"]),
    )
    return res, Decimal(owed["actual"])


async def _tell_breaker(
    breakers: BreakerStore, config: BreakerConfig, model: str, gate: ModelGate, decision: BreakerDecision
) -> None:
    """Report the outcome; a success on a closed breaker with no failures needs no write."""
    ok = not gate.faulted
    if ok and not decision.probe and decision.failures == 0:
        return
    with contextlib.suppress(*STORE_ERRORS):  # the next call's acquire fails closed on the same outage
        state = await asyncio.shield(breakers.record(f"model:{model}", config, ok=ok, probe=decision.probe))
        record_breaker_state(f"model:{model}", state)


def owed_charges(owed: Sequence[Mapping[str, str]]) -> list[tuple[Reservation, Decimal]]:
    """The (reservation, actual) pairs of a run's owed charges (its state's `owed_charges`)."""
    return [owed_reservation(dict(item)) for item in owed]


async def settle_owed(ledger: BudgetLedger, owed: Sequence[Mapping[str, str]], conn: AsyncConnection) -> None:
    """Settle a run's owed model charges inside `conn`, the step's transaction: they commit with its other
    writes or not at all. Idempotent (a charge already settled is not charged again; one whose reservation
    a crash recovery released is charged now: the call did answer)."""
    if owed:
        await ledger.settle_many(owed_charges(owed), conn=conn)
