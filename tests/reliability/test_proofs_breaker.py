"""Proof that the model gate itself refuses a call while the model's breaker is open.

The guard edge reads the breaker before a model call, but the breaker can open between that read and the
call (another replica's failures): the gate must refuse then too, and hold nothing of the budget.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from keel.context import RunContext
from keel.guards import CircuitOpen


async def test_a_model_call_is_refused_when_its_breaker_opened_after_the_edge_looked(make_keel) -> None:
    async with make_keel(["unused"], breaker_failure_threshold=1) as keel:
        guards = keel.backends.guards
        name = "model:fake-model"
        decision = await guards.breakers.acquire(name, guards.breaker)
        await guards.breakers.record(name, guards.breaker, ok=False, probe=decision.probe)
        assert await guards.breakers.state(name, guards.breaker) == "open"
        user = f"u{uuid.uuid4().hex[:10]}"  # the PostgreSQL ledger lives for the whole session
        run = RunContext(user_id=user, role="user", tenant="default", execution_id="ex-breaker")
        with pytest.raises(CircuitOpen):
            async with guards.model_call(run, "th-breaker", "fake-model", Decimal("0.01")):
                pytest.fail("the model was called through an open breaker")
        status = await keel.backends.ledger.status(user)
        assert (status.spent, status.reserved) == (0, 0)
