"""The guards report breaker state and budget remaining to the metrics a Prometheus scrape reads."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from keel.observability.logging import user_hash
from keel.observability.metrics import prometheus_text
from keel.testing.fake_model import tool_call


def _samples(prefix: str) -> dict[tuple, float]:
    found = {}
    for family in text_string_to_metric_families(prometheus_text()):
        for sample in family.samples:
            if sample.name.startswith(prefix):
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


async def test_budget_remaining_and_breaker_state_are_exported(make_keel):
    async with make_keel([tool_call("list_files", path="~"), "done"]) as keel:
        from decimal import Decimal

        await keel.backends.guards.ledger.set_limit("erin", Decimal("5"))
        out = await keel.run("list my files", user_id="erin")
        assert out.status == "succeeded"
    budget = _samples("keel_budget_remaining")
    [remaining] = [v for labels, v in budget.items() if ("scope", f"user:{user_hash('erin')}") in labels]
    assert 4.99 < remaining <= 5.0
    breakers = _samples("keel_breaker_state")
    assert any(("target", "model:fake-model") in labels and v == 0 for labels, v in breakers.items())
