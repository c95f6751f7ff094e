"""Caching: a repeated model call is answered from the response cache (no call, no cost, marked), a new agent
version misses, a `read` tool's result is reused per user while a side-effecting tool always runs, entries
expire, and `keel cache stats|clear` report and clear this deployment's entries only."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel
from typer.testing import CliRunner

from keel.cli import app
from keel.hotstate.cache_store import MemoryCacheStore
from keel.hotstate.redis_cache import RedisCacheStore
from keel.settings import Settings, shipped_file
from keel.testing.fake_model import tool_call
from keel.tools.registry import default_registry
from keel.tools.spec import ToolSpec

PROMPT = "You answer questions. Use tools when they help."
"""Instructions without `{user}`: two users of a tenant then send the same messages."""


def _uid() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
def cached(make_keel, tmp_path: Path):
    """`cached(turns, model_ttl_s=…, tool_ttl_s=…, **settings)`: make_keel with the caches on, no plan, no
    long-term memory, a prompt without the user's name and a price of $0.01 on `read_stock`."""
    prompt = tmp_path / "prompt.md"
    prompt.write_text(PROMPT, encoding="utf-8")
    prices = yaml.safe_load(shipped_file("prices.yaml").read_text(encoding="utf-8"))
    prices.setdefault("tools", {})["read_stock"] = 0.01
    prices_file = tmp_path / "prices.yaml"
    prices_file.write_text(yaml.safe_dump(prices), encoding="utf-8")

    def open_(turns: list[Any], *, model_ttl_s: float = 0, tool_ttl_s: float = 0, **overrides: Any):
        settings = {"plan_enabled": False, "memory_enabled": False, **overrides}
        return make_keel(
            turns,
            cache_model_ttl_s=model_ttl_s,
            cache_tool_ttl_s=tool_ttl_s,
            prompt_file=prompt,
            prices_file=prices_file,
            **settings,
        )

    return open_


def _decide_calls(keel) -> int:
    return sum(1 for c in keel.fake_model.calls if c["tools"] is not None)


async def _execution(keel, outcome):
    return await keel.records.get_execution(outcome.execution_id)


# -- model-response cache ------------------------------------------------------------------------------


async def test_a_repeat_is_answered_from_the_cache_at_no_cost(cached):
    """bob asks what alice asked (same tenant, same messages): no model call, nothing reserved or spent,
    the execution says it took a cached answer. carol, in another tenant, gets no cached answer."""
    alice, bob, carol = f"alice-{_uid()}", f"bob-{_uid()}", f"carol-{_uid()}"
    async with cached(["Paris.", "Lyon."], model_ttl_s=60) as keel:
        first = await keel.run("What is the capital of France?", user_id=alice)
        assert _decide_calls(keel) == 1
        second = await keel.run("What is the capital of France?", user_id=bob)
        assert (second.status, second.answer) == ("succeeded", "Paris.")
        assert _decide_calls(keel) == 1  # no model call for bob

        paid, free = await _execution(keel, first), await _execution(keel, second)
        assert paid.cost > 0 and paid.cached_model_calls == 0 and paid.total_tokens > 0
        assert (free.cost, free.cached_model_calls, free.total_tokens) == (Decimal(0), 1, 0)
        ledger = keel.backends.ledger
        assert (await ledger.status(alice)).spent == paid.cost
        bob_month = await ledger.status(bob)
        assert (bob_month.spent, bob_month.reserved) == (Decimal(0), Decimal(0))
        assert await ledger.history(bob) == []  # not even a reservation was made

        other = await keel.run("What is the capital of France?", user_id=carol, tenant="acme")
        assert other.answer == "Lyon." and _decide_calls(keel) == 2  # tenants never share answers


async def test_the_plan_call_is_cached_too(cached):
    """With the plan node on, a repeat makes neither the plan call nor decide's: two cached calls."""
    async with cached(["Paris."], model_ttl_s=60, plan_enabled=True) as keel:
        await keel.run("What is the capital of France?", user_id=f"pia-{_uid()}")
        assert len(keel.fake_model.calls) == 2  # the plan, then decide
        again = await keel.run("What is the capital of France?", user_id=f"quin-{_uid()}")
        assert again.answer == "Paris." and len(keel.fake_model.calls) == 2
        assert (await _execution(keel, again)).cached_model_calls == 2


async def test_a_new_agent_version_misses(cached):
    """The version id is in the key: the same question under another version calls the model again."""
    user = f"dana-{_uid()}"
    async with cached(["Paris.", "Paris, still."], model_ttl_s=60) as keel:
        await keel.run("What is the capital of France?", user_id=user)
        old = keel.backends.version
        keel.backends.version = replace(old, id=f"keel@{'0' * 12}")  # what a changed manifest gives
        again = await keel.run("What is the capital of France?", user_id=f"erin-{_uid()}")
        assert again.answer == "Paris, still." and _decide_calls(keel) == 2
        assert (await _execution(keel, again)).cached_model_calls == 0


async def test_a_cached_answer_with_tool_calls_gets_fresh_tool_call_ids(cached):
    """A cached turn that calls a tool runs the tool in the new thread (its recorded result is not the
    earlier call's) and the run still goes on to the model's next turn."""
    counts: dict[str, int] = {}
    registry = default_registry().with_tools(*_stock_tools(counts))
    turns = [tool_call("read_stock", call_id="c1", sku="a"), "3 left."]
    async with cached(turns, model_ttl_s=60, registry=registry) as keel:
        await keel.run("How many of a?", user_id=f"finn-{_uid()}", role="admin")
        second = await keel.run("How many of a?", user_id=f"gus-{_uid()}", role="admin")
        assert counts["read_stock"] == 2  # the tool ran for the second thread too (tool cache off)
        (row,) = await _results(keel, second)
        assert row.tool_call_id != "c1" and row.output == "a: 3 left" and not row.cached
        # Both turns came from the cache: the second turn's messages differ from the first run's only in
        # their ids (the tool call's and its result's), which the key leaves out.
        assert second.answer == "3 left." and _decide_calls(keel) == 2
        ex = await _execution(keel, second)
        assert ex.cached_model_calls == 2 and ex.cost == Decimal("0.01")  # the tool is still paid


# -- tool result cache ---------------------------------------------------------------------------------


class _Sku(BaseModel):
    sku: str


class _Ping(BaseModel):
    to: str


def _stock_tools(counts: dict[str, int]) -> list[ToolSpec]:
    async def read_stock(args: _Sku, ctx) -> str:
        counts["read_stock"] = counts.get("read_stock", 0) + 1
        return f"{args.sku}: 3 left"

    async def send_ping(args: _Ping, ctx) -> str:
        counts["send_ping"] = counts.get("send_ping", 0) + 1
        return f"pinged {args.to}"

    return [
        ToolSpec(
            name="read_stock",
            description="Stock of a SKU.",
            args_model=_Sku,
            run=read_stock,
            resource=lambda a, r, w: f"stock:{a.sku}",
            effect="read",
        ),
        ToolSpec(
            name="send_ping",
            description="Ping someone.",
            args_model=_Ping,
            run=send_ping,
            resource=lambda a, r, w: f"ping:{a.to}",
            effect="external",
        ),
    ]


def _both_tools() -> Any:
    read = tool_call("read_stock", call_id="r1", sku="a")
    ping = tool_call("send_ping", call_id="p1", to="ops")
    return read.model_copy(update={"tool_calls": [*read.tool_calls, *ping.tool_calls]})


async def test_read_results_are_reused_per_user_and_side_effects_always_run(cached):
    counts: dict[str, int] = {}
    registry = default_registry().with_tools(*_stock_tools(counts))
    hana, ivan = f"hana-{_uid()}", f"ivan-{_uid()}"
    turns = [_both_tools(), "done", _both_tools(), "done", _both_tools(), "done"]
    async with cached(turns, tool_ttl_s=60, registry=registry) as keel:
        first = await keel.run("stock and ping", user_id=hana, role="admin")
        second = await keel.run("stock and ping", user_id=hana, role="admin")
        assert counts == {"read_stock": 1, "send_ping": 2}  # the external tool ran twice
        third = await keel.run("stock and ping", user_id=ivan, role="admin")
        assert counts == {"read_stock": 2, "send_ping": 3}  # another user's read is not shared

        rows = {r.tool: r for r in await _results(keel, second)}
        assert rows["read_stock"].cached and rows["read_stock"].output == "a: 3 left"
        assert not rows["send_ping"].cached
        assert not any(r.cached for r in await _results(keel, first) + await _results(keel, third))
        audit = {
            r.tool: r
            for r in await keel.records.audit_for(execution_id=second.execution_id)
            if r.event == "tool_call"
        }
        assert audit["read_stock"].status == "ok" and "cached" in (audit["read_stock"].detail or "")
        assert "cached" not in (audit["send_ping"].detail or "")
        # The read tool's $0.01 was charged once: the cached call cost nothing.
        paid, free = await _execution(keel, first), await _execution(keel, second)
        assert paid.cost - free.cost == Decimal("0.01")
        assert (await keel.backends.ledger.status(hana)).spent == paid.cost + free.cost


async def _results(keel, outcome) -> list[Any]:
    import sqlalchemy as sa

    from keel.records import ToolResult
    from keel.records.tables import tool_results

    query = sa.select(tool_results).where(tool_results.c.execution_id == outcome.execution_id)
    async with keel.records.transaction() as conn:
        return [ToolResult(**r._mapping) for r in (await conn.execute(query)).all()]


# -- the stores: one suite over the in-process store and Redis ------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_memory_entries_expire_after_their_ttl():
    clock = _Clock()
    store = MemoryCacheStore(clock=clock)
    await store.set("k", "v", 10)
    clock.now += 9.5
    assert await store.get("k") == "v" and await store.count() == 1
    clock.now += 1
    assert await store.get("k") is None and await store.count() == 0


async def test_memory_store_drops_the_oldest_past_its_bound():
    store = MemoryCacheStore(max_entries=2)
    for key in ("a", "b", "c"):
        await store.set(key, key, 60)
    assert [await store.get(k) for k in ("a", "b", "c")] == [None, "b", "c"]


@pytest.fixture
def redis_store():
    from keel.hotstate.redis import redis_client

    client = redis_client(Settings().redis_url)
    prefix = f"keeltest:{_uid()}:"
    yield RedisCacheStore(client, prefix=prefix), client, prefix


async def test_redis_entries_expire_and_clear_touches_only_this_deployment(redis_store):
    store, client, prefix = redis_store
    other = RedisCacheStore(client, prefix=prefix + "x*")  # a deployment whose prefix extends ours
    try:
        await store.set("k1", "v1", 10)
        await store.set("k2", "v2", 10)
        await other.set("k1", "theirs", 10)
        await client.set(prefix + "breaker:m", "keel data that is not cache", px=60_000)
        assert await store.get("k1") == "v1"
        assert 0 < await client.pttl(prefix + "cache:k1") <= 10_000  # it expires, within its ttl
        assert await store.count() == 2
        assert await store.clear() == 2
        assert await store.get("k1") is None and await store.count() == 0
        assert await other.get("k1") == "theirs"
        assert await client.get(prefix + "breaker:m") == "keel data that is not cache"
    finally:
        await store.clear()
        await other.clear()
        await client.delete(prefix + "breaker:m")
        await client.aclose()


# -- across replicas, in Redis -----------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("settings", ["postgres"], indirect=True)
async def test_replicas_share_answers_in_redis_and_a_new_version_misses(cached):
    ask = "What is the capital of Italy?"
    async with cached(["Rome."], model_ttl_s=60) as one:
        await one.run(ask, user_id=f"jo-{_uid()}")
    async with cached([], model_ttl_s=60) as two:  # another process: no turns to give
        hit = await two.run(ask, user_id=f"kai-{_uid()}")
        assert hit.answer == "Rome." and _decide_calls(two) == 0
    async with cached(["Roma."], model_ttl_s=60, version="2") as newer:
        miss = await newer.run(ask, user_id=f"lea-{_uid()}")
        assert miss.answer == "Roma." and _decide_calls(newer) == 1


# -- keel cache stats | clear ----------------------------------------------------------------------


def _cli_env(settings: Settings) -> dict[str, str]:
    env = {"KEEL_HOME": str(settings.home), "KEEL_CACHE_MODEL_TTL_S": "60", "COLUMNS": "200"}
    if settings.profile == "postgres":
        env |= {
            "KEEL_PROFILE": "postgres",
            "KEEL_DATABASE_URL": str(settings.database_url),
            "KEEL_REDIS_PREFIX": settings.redis_prefix,
        }
    return env


def test_cache_stats_and_clear_json(cached, settings: Settings):
    async def two_runs() -> Any:
        async with cached(["Paris."], model_ttl_s=60) as keel:
            await keel.run("Capital of France?", user_id=f"max-{_uid()}")
            return await keel.run("Capital of France?", user_id=f"noa-{_uid()}")

    again = asyncio.run(two_runs())  # the CLI runs its own event loop
    runner = CliRunner()
    env = _cli_env(settings)
    stats = runner.invoke(app, ["cache", "stats", "--json"], env=env)
    assert stats.exit_code == 0, stats.output
    report = json.loads(stats.stdout)
    assert report["model_cache_ttl_s"] == 60 and report["tool_cache_ttl_s"] == 0
    if settings.profile == "postgres":  # the records are shared with other tests: at least this run's hit
        assert report["cached_model_calls"] >= 1 and report["entries"] == 1
    else:
        assert (report["cached_model_calls"], report["executions_with_cached_calls"]) == (1, 1)
        assert report["entries"] is None and "in-process" in report["store"]
    assert again.status == "succeeded"

    cleared = runner.invoke(app, ["cache", "clear", "--json"], env=env)
    assert cleared.exit_code == 0, cleared.output
    done = json.loads(cleared.stdout)
    if settings.profile == "postgres":
        assert (done["cleared"], done["removed"]) == (True, 1)
        after = json.loads(runner.invoke(app, ["cache", "stats", "--json"], env=env).stdout)
        assert after["entries"] == 0
    else:
        assert (done["cleared"], done["removed"]) == (False, 0)


# -- keel.yaml `cache:` ----------------------------------------------------------------------------------


def test_keel_yaml_cache_section_sets_the_ttls_and_bad_values_fail_at_their_line(tmp_path: Path):
    from keel.config import ConfigError, load_config

    path = tmp_path / "keel.yaml"
    path.write_text("agent: {name: shop}\ncache:\n  model_ttl_s: 30\n  tool_ttl_s: 5\n", encoding="utf-8")
    applied = load_config(path).apply(Settings(home=tmp_path))
    assert (applied.cache_model_ttl_s, applied.cache_tool_ttl_s) == (30, 5)
    path.write_text("agent: {name: shop}\ncache:\n  model_ttl_s: -1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"keel.yaml:3: .*model_ttl_s"):
        load_config(path)
    path.write_text("cache:\n  ttl: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"keel.yaml:2: .*ttl"):
        load_config(path)


# -- the cache on the call path: what a hit keeps owed, and an unreachable cache -----------------------------


async def test_a_hit_keeps_what_the_run_still_owes_the_ledger():
    """A hit settles nothing (no reservation, no transaction): earlier calls' charges stay owed in the
    state, to be settled by the run's next transaction, never dropped."""
    from langchain_core.messages import AIMessage, HumanMessage
    from langchain_core.outputs import ChatGeneration

    from keel.context import RunContext
    from keel.hotstate.model_cache import ModelResponseCache
    from keel.nodes._model_cache import CACHED_MARK, CachedModel

    cache = ModelResponseCache(MemoryCacheStore(), ttl_s=60)
    run = RunContext(user_id="olga", version="keel@abc")
    lookup = CachedModel(cache, object(), [HumanMessage("hi")], run=run, model_name="m")
    await cache.aupdate(lookup.prompt, lookup.llm_string, [ChatGeneration(message=AIMessage("hello"))])
    owed = {"reservation_id": "r1", "user_id": "olga", "month": "2026-12", "name": "m"}
    call = await lookup.lookup({"owed_charges": [owed]})
    assert call is not None and call.cached and call.cost == 0
    assert call.owed == (owed,)
    assert call.message.response_metadata[CACHED_MARK] is True


async def test_an_unreachable_cache_is_a_miss_not_a_failure():
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration

    from keel.hotstate.model_cache import ModelResponseCache
    from keel.hotstate.redis import redis_client
    from keel.hotstate.tool_cache import CachedResult, ToolResultCache

    client = redis_client("redis://127.0.0.1:1/0")  # nothing listens there
    store = RedisCacheStore(client, prefix=f"keeltest:{_uid()}:")
    try:
        model = ModelResponseCache(store, ttl_s=60)
        await model.aupdate("p", "l", [ChatGeneration(message=AIMessage("x"))])
        assert await model.alookup("p", "l") is None
        tools = ToolResultCache(store, ttl_s=60)
        await tools.remember("k", CachedResult(output="x"))
        assert await tools.lookup("k") is None
    finally:
        await client.aclose()


async def test_the_policy_is_asked_before_any_cache(cached):
    """A cached answer's tool calls and a cached tool result are both behind the permission check: rosa's
    read is cached while she runs as admin; as a viewer (no rule for `stock:`) the same call is denied
    and nothing is served. A cached turn asking for `send_ping` pauses a user's run for approval, as a
    fresh one would."""
    counts: dict[str, int] = {}
    registry = default_registry().with_tools(*_stock_tools(counts))
    rosa = f"rosa-{_uid()}"
    read = tool_call("read_stock", call_id="r1", sku="a")
    ping = tool_call("send_ping", call_id="p1", to="ops")
    turns = [read, "3 left.", read, "I may not look.", ping, "pinged"]
    async with cached(turns, model_ttl_s=0, tool_ttl_s=60, registry=registry) as keel:
        await keel.run("stock of a", user_id=rosa, role="admin")
        denied = await keel.run("stock of a", user_id=rosa, role="viewer")
        assert counts == {"read_stock": 1} and denied.status == "failed"
        assert not any(r.cached for r in await _results(keel, denied))
    async with cached(turns[4:], model_ttl_s=60, registry=registry) as keel:
        await keel.run("ping ops", user_id=f"sam-{_uid()}", role="admin")
        paused = await keel.run("ping ops", user_id=f"tess-{_uid()}", role="user")
        assert paused.status == "awaiting_approval" and counts["send_ping"] == 1
