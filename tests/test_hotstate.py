"""One suite for both hot-state stores: in-process and Redis (breakers, moving-window rate limits, and
the one-step tool-call admission that checks a breaker and every window together)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from limits import parse

from keel.hotstate import (
    BreakerConfig,
    MemoryBreakers,
    MemoryRateWindows,
    RateHit,
    RedisAdmission,
    RedisBreakers,
    RedisRateWindows,
    admission_for,
    redis_client,
)

REDIS = "redis://127.0.0.1:6379/0"
CONFIG = BreakerConfig(failure_threshold=3, recovery_s=0.4)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def stores(request):
    if request.param == "memory":
        yield MemoryBreakers(), MemoryRateWindows()
        return
    prefix = f"keeltest:{uuid.uuid4().hex[:8]}:"
    client = redis_client(REDIS)
    yield RedisBreakers(client, REDIS, prefix=prefix), RedisRateWindows(REDIS, prefix=prefix)
    keys = [k async for k in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_breaker_opens_after_the_threshold_and_refuses(stores) -> None:
    breakers, _ = stores
    for _ in range(2):
        assert (await breakers.acquire("m", CONFIG)).allowed
        assert await breakers.record("m", CONFIG, ok=False, probe=False) == "closed"
    assert (await breakers.acquire("m", CONFIG)).failures == 2
    assert await breakers.record("m", CONFIG, ok=False, probe=False) == "open"
    refused = await breakers.acquire("m", CONFIG)
    assert (refused.allowed, refused.state) == (False, "open") and 0 < refused.retry_after_s <= 0.4
    assert await breakers.state("m", CONFIG) == "open"
    assert (await breakers.acquire("other", CONFIG)).allowed, "breakers are per name"


async def test_a_success_resets_the_failure_count(stores) -> None:
    breakers, _ = stores
    for ok in (False, False, True, False, False):
        await breakers.record("m", CONFIG, ok=ok, probe=False)
    assert await breakers.state("m", CONFIG) == "closed"


async def test_after_recovery_exactly_one_probe_goes_through(stores) -> None:
    breakers, _ = stores
    for _ in range(3):
        await breakers.record("m", CONFIG, ok=False, probe=False)
    await asyncio.sleep(0.45)
    assert await breakers.state("m", CONFIG) == "half_open"
    decisions = await asyncio.gather(*[breakers.acquire("m", CONFIG) for _ in range(10)])
    probes = [d for d in decisions if d.allowed]
    assert len(probes) == 1 and probes[0].probe
    assert all(d.state == "half_open" and not d.allowed for d in decisions if d is not probes[0])
    assert await breakers.record("m", CONFIG, ok=False, probe=True) == "open", "a failed probe re-opens"
    assert not (await breakers.acquire("m", CONFIG)).allowed
    await asyncio.sleep(0.45)
    probe = await breakers.acquire("m", CONFIG)
    assert probe.probe and await breakers.record("m", CONFIG, ok=True, probe=True) == "closed"
    assert (await breakers.acquire("m", CONFIG)).allowed and await breakers.state("m", CONFIG) == "closed"


async def test_rate_window_allows_n_then_says_when_to_retry(stores) -> None:
    _, rates = stores
    item = parse("3/second")
    got = [await rates.hit(item, "tool", "send_email") for _ in range(4)]
    assert [g.allowed for g in got] == [True, True, True, False]
    assert 0 < got[-1].retry_after_s <= 1.0
    assert (await rates.hit(item, "tool", "read_file")).allowed, "windows are per key"
    await asyncio.sleep(got[-1].retry_after_s + 0.05)
    assert (await rates.hit(item, "tool", "send_email")).allowed


@pytest.mark.redis
async def test_redis_down_raises_hot_state_unavailable() -> None:
    from keel.hotstate import HotStateUnavailable

    dead = "redis://127.0.0.1:1/0"
    client = redis_client(dead)
    with pytest.raises(HotStateUnavailable, match="Redis at 127.0.0.1:1/0 is unavailable"):
        await RedisBreakers(client, dead).acquire("m", CONFIG)
    with pytest.raises(HotStateUnavailable, match="Redis at 127.0.0.1:1/0 is unavailable"):
        await RedisRateWindows(dead).hit(parse("1/second"), "x")
    with pytest.raises(HotStateUnavailable, match="Redis at 127.0.0.1:1/0 is unavailable"):
        await RedisAdmission(client, dead).admit("tool:t", CONFIG, [_hit("per_tool", "1/second", "t")])
    await client.aclose()


def _hit(scope: str, limit: str, *key: str) -> RateHit:
    return RateHit(scope=scope, item=parse(limit), key=key)


async def test_admission_counts_a_call_only_when_every_window_has_room(stores) -> None:
    breakers, rates = stores
    admission = admission_for(breakers, rates)

    def hits(user: str) -> list[RateHit]:
        return [
            _hit("per_tool", "3/minute", "tool", "mail"),
            _hit("per_user", "1/minute", "user", user, "mail"),
        ]

    assert (await admission.admit("tool:mail", CONFIG, hits("ann"))).allowed
    refused = await admission.admit("tool:mail", CONFIG, hits("ann"))
    assert (refused.allowed, refused.limited_by) == (False, "per_user") and 55 < refused.retry_after_s <= 60
    assert refused.breaker.allowed, "the breaker let it through; the window refused it"
    assert [(await admission.admit("tool:mail", CONFIG, hits(u))).allowed for u in ("bob", "cy")] == [
        True,
        True,
    ]
    full = await admission.admit("tool:mail", CONFIG, hits("dan"))
    assert (full.allowed, full.limited_by) == (False, "per_tool"), "ann's refused call was not counted"
    both = await admission.admit("tool:mail", CONFIG, hits("ann"))
    assert both.limited_by in ("per_tool", "per_user") and 55 < both.retry_after_s <= 60
    assert (await admission.admit("tool:other", CONFIG, [])).allowed


async def test_admission_refuses_on_an_open_breaker_and_hands_out_one_probe(stores) -> None:
    breakers, rates = stores
    admission = admission_for(breakers, rates)
    window = [_hit("per_tool", "3/minute", "tool", "flaky")]
    for _ in range(3):
        await breakers.record("tool:flaky", CONFIG, ok=False, probe=False)
    shut = await admission.admit("tool:flaky", CONFIG, window)
    assert (shut.allowed, shut.breaker.state, shut.limited_by) == (False, "open", None)
    assert 0 < shut.breaker.retry_after_s <= 0.4
    await asyncio.sleep(0.45)
    busy = await admission.admit("tool:flaky", CONFIG, window + [_hit("per_user", "0/minute", "u", "x")])
    assert (busy.allowed, busy.limited_by, busy.breaker.probe) == (False, "per_user", False)
    got = await asyncio.gather(*[admission.admit("tool:flaky", CONFIG, window) for _ in range(5)])
    assert [(g.allowed, g.breaker.probe) for g in got].count((True, True)) == 1
    assert sum(g.allowed for g in got) == 1, "the refused rate check took no probe; the others wait"
    assert [g.limited_by for g in got] == [None] * 5
    assert await breakers.record("tool:flaky", CONFIG, ok=True, probe=True) == "closed"
    after = [await admission.admit("tool:flaky", CONFIG, window) for _ in range(3)]
    assert [a.limited_by for a in after] == [None, None, "per_tool"], "only the probe was counted before"
