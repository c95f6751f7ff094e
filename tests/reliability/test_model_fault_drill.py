"""Drill: the model server fails 30 % of requests (500, 429 + Retry-After, hang, malformed JSON,
truncated body), through the real ChatOpenAI client. Every run succeeds or ends with a clear
terminated_reason; nothing escapes unexplained; each email is sent at most once and audited; the
ledger equals its entries and the costs the executions recorded."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import httpx
import pytest
from _drill import Totals, check, drill_seed, jobs
from _runs import drive_job, respond

from keel.app.service import Keel
from keel.settings import Settings
from keel.testing.openai_server import Chaos, FakeOpenAIServer, Fault, Reply


@pytest.mark.parametrize("profile", ["embedded", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_runs_end_cleanly_when_30_percent_of_model_calls_fail(
    profile: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    seed = drill_seed(2202)
    rng = random.Random(seed)
    chaos = Chaos(rate=0.3, seed=seed)
    drill_jobs = jobs(16, rng, prefix=f"mf{profile[0]}", approval_share=0.2)
    totals = Totals(name=f"model faults 30% ({profile})", seed=seed)
    extra = {}
    if profile == "postgres":
        extra = {
            "profile": "postgres",
            "database_url": request.getfixturevalue("pg_url"),
            "redis_prefix": f"keeldrill:mf{seed}:{tmp_path.name}:",
        }
    async with FakeOpenAIServer(model="fake-model", respond=respond, chaos=chaos) as server:
        settings = Settings(
            home=tmp_path,
            memory_enabled=False,
            log_level="error",
            model_provider="openai",
            model="fake-model",
            openai_base_url=server.base_url,
            model_timeout_s=0.5,
            breaker_failure_threshold=1000,  # every run meets the faults, not an open breaker
            **extra,
        )
        outcomes = Counter()
        async with Keel.open(settings) as keel:
            for job in drill_jobs:
                out = await drive_job(keel, job, totals)
                outcomes[out.terminated_reason or out.status if out else "error"] += 1
        totals.faults = sum(chaos.injected.values())
        await check(settings, drill_jobs, totals)
    print(totals.table(), dict(chaos.injected), dict(outcomes))
    assert len(chaos.injected) == 5, (dict(chaos.injected), totals.table())
    assert outcomes["succeeded"] > 0, (dict(outcomes), totals.table())
    assert totals.bad() == 0, totals.table()


def test_a_truncated_body_breaks_the_client_read() -> None:
    """Fault.truncated sends half a body and drops the connection: the client cannot read a reply."""
    with FakeOpenAIServer() as server:
        server.enqueue(Fault.truncated(), Fault.truncated(), Reply(content="whole"))
        url = f"{server.base_url}/chat/completions"
        body = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
        with httpx.Client(trust_env=False) as client:
            with pytest.raises(httpx.RemoteProtocolError):
                client.post(url, json=body)
            with (
                pytest.raises(httpx.RemoteProtocolError),
                client.stream("POST", url, json={**body, "stream": True}) as streamed,
            ):
                list(streamed.iter_lines())
            assert client.post(url, json=body).json()["choices"][0]["message"]["content"] == "whole"


def test_chaos_is_seeded_and_keeps_the_script() -> None:
    """The same seed injects the same faults; a fault never uses up a scripted answer."""
    first, second = Chaos(rate=0.3, seed=5), Chaos(rate=0.3, seed=5)
    assert [first.pick() for _ in range(50)] == [second.pick() for _ in range(50)]
    assert 5 <= sum(first.injected.values()) <= 25
    chaos = Chaos(rate=1.0, seed=1, faults=[Fault.http(500)])
    with FakeOpenAIServer(chaos=chaos) as server:
        server.enqueue(Reply(content="kept"))
        with httpx.Client(trust_env=False) as client:
            body = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
            assert client.post(f"{server.base_url}/chat/completions", json=body).status_code == 500
        assert server.pending == 1 and chaos.injected == {"http_500": 1}
