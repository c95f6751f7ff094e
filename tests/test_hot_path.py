"""The hot path of a guarded run on the postgres profile, counted on the real Redis: at most one round trip
per model call (its breaker acquire) and per tool call (its admission), none for working memory while the
thread fits the context; and the guard edge's process-local breaker hint never lets a call through a
breaker another process opened (the acquire refuses it)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio.connection import AbstractConnection

from keel.app.service import Keel
from keel.settings import Settings
from keel.testing.fake_model import FakeChatModel, tool_call

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ROOT = Path(__file__).resolve().parent.parent


def _what(command: Any) -> str:
    """Which part of keel a packed Redis command serves, from the key it names."""
    packed = command if isinstance(command, bytes) else b"".join(bytes(c) for c in command)
    for marker, part in ((b"breaker:model:", "model"), (b"breaker:tool:", "tool"), (b":rate:", "tool")):
        if marker in packed:
            return part
    return "working memory" if b"wm:" in packed else "other"


@pytest.fixture
def redis_round_trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Every Redis round trip (a script or a pipeline is one) made while the test runs, by part."""
    seen: Counter[str] = Counter()
    original = AbstractConnection.send_packed_command

    async def send(self: AbstractConnection, command: Any, *args: Any, **kwargs: Any) -> Any:
        seen[_what(command)] += 1
        return await original(self, command, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", send)
    yield seen


def _settings(pg_url: str, tmp_path: Path, **extra: Any) -> Settings:
    (tmp_path / "workspace" / "shared").mkdir(parents=True, exist_ok=True)
    (tmp_path / "workspace" / "shared" / "handbook.md").write_text("Deploy on Tuesdays.\n")
    return Settings(
        profile="postgres",
        database_url=pg_url,
        home=tmp_path,
        redis_prefix=f"keeltest:{uuid.uuid4().hex[:10]}:",
        memory_enabled=False,
        **extra,
    )


def _reads(n: int) -> list[Any]:
    return [tool_call("read_file", f"r{uuid.uuid4().hex[:8]}", path="shared/handbook.md") for _ in range(n)]


async def test_a_guarded_run_costs_one_redis_round_trip_per_model_call_and_per_tool_call(
    pg_url: str, tmp_path: Path, redis_round_trips: Counter[str]
) -> None:
    model = FakeChatModel([*_reads(1), "warm.", *_reads(3), "Tuesdays."])
    user = f"u{uuid.uuid4().hex[:8]}"
    async with Keel.open(_settings(pg_url, tmp_path), model=model, model_name="fake-model") as keel:
        await keel.run("warm up: connections and scripts", user_id=user)
        redis_round_trips.clear()
        calls_before = len(model.calls)
        out = await keel.run("what does the handbook say, three times?", user_id=user)
    assert out.status == "succeeded" and out.answer == "Tuesdays."
    model_calls, tool_calls = len(model.calls) - calls_before, 3
    assert model_calls >= 4 and out.path.count("tool") >= 1
    counted = dict(redis_round_trips)
    assert counted.get("model", 0) <= model_calls, counted
    assert counted.get("tool", 0) <= tool_calls, counted
    assert counted.get("working memory", 0) == 0, counted  # the thread fits: no digest read or written
    assert counted.get("other", 0) == 0, counted


_OPEN_IT = r"""
import asyncio, sys
from keel.hotstate import BreakerConfig, RedisBreakers, redis_client

async def main(url, prefix, threshold):
    client = redis_client(url)
    breakers = RedisBreakers(client, url, prefix=prefix)
    config = BreakerConfig(failure_threshold=threshold, recovery_s=60)
    for _ in range(threshold):
        state = await breakers.record("model:fake-model", config, ok=False, probe=False)
    await client.aclose()
    print(state)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


async def test_a_breaker_another_process_opened_stops_the_next_model_call_though_the_hint_says_closed(
    pg_url: str, tmp_path: Path
) -> None:
    settings = _settings(
        pg_url, tmp_path, breaker_failure_threshold=2, breaker_recovery_s=60, plan_enabled=False
    )
    model = FakeChatModel(["first.", "never sent."])
    user = f"u{uuid.uuid4().hex[:8]}"
    async with Keel.open(settings, model=model, model_name="fake-model") as keel:
        first = await keel.run("hello", user_id=user)
        assert first.status == "succeeded"
        breakers = keel.backends.guards.breakers
        assert breakers.seen("model:fake-model") == "closed", "this process's hint: closed"

        opened = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", _OPEN_IT, settings.redis_url, settings.redis_prefix, "2"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert opened.returncode == 0 and opened.stdout.strip() == "open", opened.stderr[-2000:]
        assert breakers.seen("model:fake-model") == "closed", "the hint has not seen it"

        calls = len(model.calls)
        out = await keel.run("hello again", user_id=user)
        assert len(model.calls) == calls, "no model call went through the breaker another process opened"
        assert (out.status, out.terminated_reason) == ("terminated", "llm_unavailable")
        assert "decide" in out.path, "the edge passed on the hint; the acquire refused the call"
        assert breakers.seen("model:fake-model") == "open", "the refusal taught the hint"
