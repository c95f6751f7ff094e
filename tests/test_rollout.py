"""Gradual rollouts end to end: a user's run goes to their arm and is recorded with it; a failing arm is
stopped by its guard rails (once, audited) and its users return to the stable arm; operators set, stop and
resume arms; the file is hot-reloaded and validated; all of it shared across processes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
import uuid
from asyncio.subprocess import PIPE
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from typer.testing import CliRunner

from keel.app.service import Keel
from keel.cli import app
from keel.config import load_config
from keel.errors import Conflict, NotFound
from keel.rollout import RolloutError, load_rollout
from keel.settings import Settings
from tests.reliability._race import ROOT
from tests.rollout_project import TASK, RolloutProject


@pytest.fixture
def project(tmp_path: Path) -> RolloutProject:
    return RolloutProject(tmp_path / "desk")


def _open(project: RolloutProject, settings: Settings) -> Any:
    return Keel.open(settings.model_copy(update={"rollout_refresh_s": 0}), config=load_config(project.config))


async def _arm_audit(keel: Keel, project: RolloutProject, arm: str = "b") -> list[Any]:
    return await keel.records.audit_for(thread_id=f"rollout/{project.name}/{arm}")


async def _stops(keel: Keel, project: RolloutProject) -> list[Any]:
    return [r for r in await _arm_audit(keel, project) if r.event == "rollout_stop"]


async def test_runs_go_to_their_arm_and_a_failing_arm_is_stopped_once_then_resumed(
    project: RolloutProject, settings: Settings
) -> None:
    async with _open(project, settings) as keel:
        spans = InMemorySpanExporter()
        keel.backends.telemetry.tracing.add_exporter(spans)
        arms = keel.backends.arms
        assert set(arms) == {"a", "b"} and arms["a"] is keel.backends  # keel.yaml is arm a
        va, vb = arms["a"].version.id, arms["b"].version.id
        assert va.startswith("desk-v1@") and vb.startswith("desk-v2@")

        # A user outside the allow-list, at 90/10, whose arm is a (found, not assumed).
        rollout = keel.backends.rollout
        assert rollout is not None
        stable_user = [u for u in (f"u-{i}" for i in range(20)) if await rollout.choose(u) == "a"][0]
        out = await keel.run(TASK, user_id=stable_user)
        ex = await keel.records.get_execution(out.execution_id)
        assert (out.status, ex.arm, ex.version) == ("succeeded", "a", va)

        # The canaries run B: B's policy refuses the lookup, so each run fails; the third trips the rail.
        c1, c2, c3 = project.canaries
        for user in (c1, c2):
            out = await keel.run(TASK, user_id=user)
            ex = await keel.records.get_execution(out.execution_id)
            assert (out.status, ex.arm, ex.version) == ("failed", "b", vb)
        run_spans = {
            s.attributes["keel.execution_id"]: s
            for s in spans.get_finished_spans()
            if s.name == "invoke_agent keel"
        }
        traced = run_spans[out.execution_id].attributes
        assert (traced["keel.arm"], traced["keel.version"]) == (
            "b",
            vb,
        )  # the trace names the arm and version
        assert await _stops(keel, project) == []  # two runs: fewer than min_runs, no verdict yet
        out = await keel.run(TASK, user_id=c3)
        assert (await keel.records.get_execution(out.execution_id)).arm == "b"

        stops = await _stops(keel, project)
        assert len(stops) == 1
        assert stops[0].user_id == "keel-guard-rail" and stops[0].thread_id == f"rollout/{project.name}/b"
        assert "success rate 0.0% is below 50.0% over 3 runs" in (stops[0].detail or "")
        assert stops[0].args == {
            "runs": 3,
            "success_rate": 0.0,
            "tool_failure_rate": None,
            "cost_per_run_usd": 0.0,
        }
        status = {s.arm: s for s in await keel.rollout_status()}
        assert status["b"].stopped and status["b"].stopped_by == "keel-guard-rail"
        assert status["a"].share == 1.0 and status["b"].share == 0.0

        # Stopped: the canary's next run is on the stable arm, and succeeds; checking again stops nothing.
        out = await keel.run(TASK, user_id=c1)
        ex = await keel.records.get_execution(out.execution_id)
        assert (out.status, ex.arm, ex.version) == ("succeeded", "a", va)
        assert await rollout.check("b") is None
        assert len(await _stops(keel, project)) == 1

        # Resumed by an operator (audited): the canary is back on B.
        await keel.rollout_resume("b", by="ops")
        with pytest.raises(Conflict):
            await keel.rollout_resume("b", by="ops")
        out = await keel.run(TASK, user_id=c1)
        assert (await keel.records.get_execution(out.execution_id)).arm == "b"
        events = [r.event for r in await _arm_audit(keel, project)]
        assert events.count("rollout_resume") == 1
        assert (await keel.records.verify_audit()).ok


async def test_operators_set_weights_for_every_user_and_cannot_stop_the_stable_arm(
    project: RolloutProject, settings: Settings
) -> None:
    async with _open(project, settings) as keel:
        rollout = keel.backends.rollout
        assert rollout is not None
        users = [f"w-{i}" for i in range(400)]
        before = {u: await rollout.choose(u) for u in users}
        assert 0 < sum(v == "b" for v in before.values()) < 100  # about 10 %
        status = await keel.rollout_set("b", 50, by="ops")
        b = next(s for s in status if s.arm == "b")
        assert (b.weight, b.file_weight) == (50, 10)
        after = {u: await rollout.choose(u) for u in users}
        assert all(after[u] == "b" for u in users if before[u] != after[u])  # only moves into b
        assert sum(v == "b" for v in after.values()) > 120  # about half now
        with pytest.raises(Conflict, match="stable arm"):
            await keel.rollout_stop("a", by="ops")
        with pytest.raises(NotFound, match="no arm 'c'"):
            await keel.rollout_set("c", 1, by="ops")
        await keel.rollout_stop("b", by="ops", reason="looks off")
        with pytest.raises(Conflict, match="stopped already"):
            await keel.rollout_stop("b", by="ops")
        assert all([await rollout.choose(u) == "a" for u in users])
        rows = await _arm_audit(keel, project)
        assert [(r.event, r.user_id) for r in rows][-2:] == [("rollout_set", "ops"), ("rollout_stop", "ops")]


async def test_the_file_is_hot_reloaded_and_a_bad_edit_changes_nothing(
    project: RolloutProject, tmp_path: Path
) -> None:
    async with _open(project, Settings(home=tmp_path / "home")) as keel:
        rollout = keel.backends.rollout
        assert rollout is not None
        users = [f"h-{i}" for i in range(200)]
        project.write_rollout(wa=0, wb=1)
        assert all([await rollout.choose(u) == "b" for u in users])  # everyone on b after the edit
        good = rollout.spec()
        project.rollout.write_text(project.rollout.read_text().replace("stable: a", "stable: z"))
        assert rollout.spec() == good and "stable: 'z' is not one of the arms" in str(rollout.last_error)
        project.rollout.write_text(
            project.rollout.read_text().replace("stable: z", "stable: a").replace("keel.b.yaml", "keel.yaml")
        )
        assert rollout.spec() == good and "takes a restart" in str(rollout.last_error)


@pytest.mark.parametrize(
    ("edit", "line", "message"),
    [
        (lambda t: t.replace("stable: a", "stable: c"), 3, "stable: 'c' is not one of the arms (a, b)"),
        (lambda t: t.replace("weight: 10", "weight: -1"), 6, "arm b: weight must be a number >= 0"),
        (lambda t: t.replace("keel.b.yaml", "nowhere.yaml"), 6, "arm b: config 'nowhere.yaml' is not a file"),
        (lambda t: t.replace("min_runs: 3", "min_runs: 0"), 11, "min_runs must be an integer >= 1"),
        (lambda t: t.replace("window: 1h", "window: soon"), 10, "invalid window 'soon'"),
        (lambda t: t.replace("  b: [", "  c: ["), 8, "allow: 'c' is not one of the arms"),
        (lambda t: t.replace("stable: a", "stable: a\nstabel: b"), 4, "unknown key 'stabel'"),
        (lambda t: t.replace("version: 1", "version: 2"), 1, "unsupported version 2"),
    ],
)
def test_a_bad_rollout_file_is_refused_at_its_line(
    project: RolloutProject, edit: Any, line: int, message: str
) -> None:
    project.rollout.write_text(edit(project.rollout.read_text()))
    with pytest.raises(RolloutError) as err:
        load_rollout(project.rollout)
    assert err.value.line == line, str(err.value)
    assert message in err.value.reason


def test_the_cli_shows_sets_stops_and_resumes(
    project: RolloutProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KEEL_ROLLOUT_REFRESH_S", "0")
    runner = CliRunner()

    def keel(*args: str) -> Any:
        return runner.invoke(app, ["--config", str(project.config), "rollout", *args])

    r = keel("status", "--json")
    assert r.exit_code == 0, r.output
    arms = {a["arm"]: a for a in json.loads(r.stdout)["arms"]}
    assert arms["a"]["stable"] and arms["b"]["weight"] == 10 and arms["b"]["version"].startswith("desk-v2@")
    r = keel("set", "b", "25", "--by", "ops", "--json")
    assert r.exit_code == 0 and {a["arm"]: a["weight"] for a in json.loads(r.stdout)["arms"]} == {
        "a": 90,
        "b": 25,
    }
    r = keel("stop", "b", "--reason", "checking", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["arms"][1]["stop_reason"] == "checking"
    r = keel("stop", "b")
    assert r.exit_code == 1 and "stopped already" in r.stderr
    r = keel("status")  # piped: tab-separated, ids whole
    header, *rows = r.stdout.splitlines()
    assert header.split("\t")[:3] == ["arm", "state", "version"]
    assert rows[1].split("\t")[:2] == ["b", "stopped"] and arms["b"]["version"] in rows[1]
    assert keel("resume", "b").exit_code == 0
    r = runner.invoke(app, ["rollout", "status"])  # no config, no rollout
    assert r.exit_code == 1 and "no rollout in force" in r.stderr


_WORKER = textwrap.dedent(
    """
    import asyncio, sys
    from keel.app.service import Keel
    from keel.config import load_config
    from keel.settings import Settings

    async def main(config, url, prefix, users, home):
        s = Settings(profile="postgres", database_url=url, redis_prefix=prefix, home=home)
        async with Keel.open(s, config=load_config(config)) as keel:
            for user in users.split(","):
                await keel.run("lookup_order order_id=1001", user_id=user)

    asyncio.run(main(*sys.argv[1:6]))
    """
)


def _pg(pg_url: str, home: Path) -> Settings:
    return Settings(
        profile="postgres", database_url=pg_url, redis_prefix=f"keeltest:{uuid.uuid4().hex[:10]}:", home=home
    )


@pytest.mark.postgres
async def test_an_arm_another_process_stopped_is_stopped_here(
    project: RolloutProject, pg_url: str, tmp_path: Path
) -> None:
    settings = _pg(pg_url, tmp_path / "main")
    async with _open(project, settings) as keel:
        canary = project.canaries[0]
        assert await keel.backends.rollout.choose(canary) == "b"  # type: ignore[union-attr]
        # Another process runs the canaries' failing runs; its guard rails stop b after the third.
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _WORKER,
            str(project.config),
            pg_url,
            settings.redis_prefix,
            ",".join(project.canaries),
            str(tmp_path / "worker"),
            cwd=ROOT,
            env=env,
            stdout=PIPE,
            stderr=PIPE,
        )
        _, err = await asyncio.wait_for(worker.communicate(), timeout=120)
        assert worker.returncode == 0, err.decode()[-2000:]
        stops = await _stops(keel, project)
        assert len(stops) == 1 and stops[0].user_id == "keel-guard-rail"
        # This process saw nothing of it but the shared state: the canary's next run is on the stable arm.
        out = await keel.run(TASK, user_id=canary)
        assert (await keel.records.get_execution(out.execution_id)).arm == "a"


@pytest.mark.postgres
async def test_guard_rails_tripping_together_stop_the_arm_once(
    project: RolloutProject, pg_url: str, tmp_path: Path
) -> None:
    project.write_rollout(every=3600)  # no check after each run: the two explicit checks race
    async with (
        _open(project, _pg(pg_url, tmp_path / "one")) as one,
        _open(project, _pg(pg_url, tmp_path / "two")) as two,
    ):
        for user in project.canaries:
            await one.run(TASK, user_id=user)
        assert await _stops(one, project) == []
        r1, r2 = one.backends.rollout, two.backends.rollout
        assert r1 is not None and r2 is not None and r1 is not r2
        reasons = await asyncio.gather(r1.check("b"), r2.check("b"))  # two engines: two connections
        assert any(reasons)
        stops = await _stops(two, project)
        assert len(stops) == 1  # however the two interleaved: one stop, one audit row
        assert await r2.choose(project.canaries[0]) == "a" and await r1.choose(project.canaries[0]) == "a"
