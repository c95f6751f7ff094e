"""No execution stays `running` after its process died: the lease expires, the sweep marks it
`interrupted`, and resume continues it (both storage profiles)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
from pathlib import Path

import warm_python

from keel.app.service import Keel
from keel.settings import Settings
from keel.testing.fake_model import FakeChatModel

ROOT = Path(__file__).resolve().parents[2]

_DIE_MID_RUN = textwrap.dedent("""
    import asyncio, os, sys
    from keel.app.service import Keel
    from keel.settings import Settings
    from keel.testing.fake_model import FakeChatModel

    def die(messages):
        os._exit(137)  # the process dies in the middle of the run, with its execution `running`

    async def main():
        async with Keel.open(Settings(), model=FakeChatModel([die]), model_name="fake-model") as keel:
            await keel.run("hello", user_id="dora", thread_id=sys.argv[1])

    asyncio.run(main())
""")


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
    env.update(KEEL_PROFILE=settings.profile, KEEL_HOME=str(settings.home))
    if settings.profile == "postgres":
        env.update(KEEL_DATABASE_URL=settings.database_url, KEEL_REDIS_PREFIX=settings.redis_prefix)
    return env


async def test_a_run_whose_process_died_is_swept_interrupted_and_resumed(settings: Settings):
    thread = "5a7e0000-0000-4000-8000-000000000007"
    argv = [sys.executable, "-c", _DIE_MID_RUN, thread]
    proc = await asyncio.to_thread(warm_python.run, argv, cwd=ROOT, env=_env(settings), timeout=120)
    assert proc.returncode == 137, proc.stderr[-2000:]

    # Within its lease the execution is still taken for alive: the sweep leaves it alone.
    async with Keel.open(settings, model=FakeChatModel([]), model_name="fake-model") as keel:
        ex = await keel.records.latest_execution(thread)
        assert ex.status == "running" and ex.heartbeat_at is not None

    # Once the lease has expired (a tiny lease here), opening keel marks it interrupted.
    expired = settings.model_copy(update={"run_lease_s": 0.001})
    model = FakeChatModel(["Hello, Dora."])
    async with Keel.open(expired, model=model, model_name="fake-model") as keel:
        ex = await keel.records.latest_execution(thread)
        assert ex.status == "interrupted" and "lease expired" in ex.error
        out = await keel.resume(thread)
        assert (out.status, out.answer, out.execution_id) == ("succeeded", "Hello, Dora.", ex.execution_id)
        done = await keel.records.get_execution(ex.execution_id)
        assert done.status == "succeeded" and done.error is None


async def test_heartbeat_renews_only_running_executions(settings: Settings):
    from datetime import UTC, datetime, timedelta

    from keel.records import Execution

    long_ago = datetime.now(UTC) - timedelta(hours=1)
    async with Keel.open(settings, model=FakeChatModel([]), model_name="fake-model") as keel:
        rec = keel.records
        for eid, status in (("alive", "running"), ("dead", "running"), ("done", "succeeded")):
            await rec.start_execution(
                Execution(
                    execution_id=eid,
                    thread_id=eid,
                    user_id="u",
                    role="user",
                    tenant="t",
                    version="v",
                    task="x",
                    status=status,
                    started_at=long_ago,
                    heartbeat_at=long_ago,
                )
            )
        await rec.heartbeat("alive")
        await rec.heartbeat("done")
        swept = await rec.sweep_stale(60)  # the session's PostgreSQL database may hold other dead runs
        assert "dead" in swept and "alive" not in swept and "done" not in swept
        assert [(await rec.get_execution(e)).status for e in ("alive", "dead", "done")] == [
            "running",
            "interrupted",
            "succeeded",
        ]
        assert (await rec.get_execution("done")).heartbeat_at == long_ago


def test_keel_sweep_lists_the_interrupted_runs_to_resume(tmp_path: Path):
    from datetime import UTC, datetime, timedelta

    from typer.testing import CliRunner

    from keel.cli import app
    from keel.records import Execution

    home = tmp_path / "home"
    long_ago = datetime.now(UTC) - timedelta(hours=1)

    async def seed(name: str = "dead") -> None:
        async with Keel.open(Settings(home=home), model=FakeChatModel([]), model_name="fake-model") as keel:
            await keel.records.start_execution(
                Execution(
                    execution_id=f"ex-{name}",
                    thread_id=f"th-{name}",
                    user_id="u",
                    role="user",
                    tenant="t",
                    version="v",
                    task="x",
                    started_at=long_ago,
                    heartbeat_at=long_ago,
                )
            )

    asyncio.run(seed())
    result = CliRunner().invoke(app, ["sweep"], env={"KEEL_HOME": str(home), "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "1 run(s) marked interrupted" in result.output
    assert "keel resume th-dead" in result.output
    again = CliRunner().invoke(app, ["sweep"], env={"KEEL_HOME": str(home), "COLUMNS": "200"})
    assert again.exit_code == 0 and "0 run(s) marked interrupted" in again.output

    asyncio.run(seed("dead-too"))
    as_json = CliRunner().invoke(app, ["sweep", "--json"], env={"KEEL_HOME": str(home)})
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout) == [{"execution_id": "ex-dead-too", "thread_id": "th-dead-too"}]
