"""A rollout on a live server, `langgraph dev` and keel on Aegra (two replicas over one PostgreSQL, requests
alternating between them): a user's run executes their arm's version (the server graph routes each run to
the graph of the version its context names), the guard rails stop a failing arm for every replica, and
admins (only) watch and change the rollout through /keel/rollout."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from live_server import ROOT, aegra_serve, langgraph_dev, scratch_databases

from keel.records import Records
from keel.settings import Settings
from tests.rollout_project import TASK, RolloutProject

pytestmark = pytest.mark.slow

ALICE, BOB, OPS = "alice-dev-key", "bob-dev-key", "ops-dev-key"  # keel/server/dev_keys.yaml


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> RolloutProject:
    p = RolloutProject(tmp_path_factory.mktemp("rollout-server") / "desk")
    p.canaries = ["alice"]  # alice runs version B; bob is at 90/10 (found below)
    p.write_rollout(wa=100, wb=0, min_runs=1)
    return p


@pytest.fixture(scope="module", params=["langgraph-dev", "aegra"])
def live(
    request: pytest.FixtureRequest, project: RolloutProject, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[list[str], Settings]]:
    home = tmp_path_factory.mktemp(f"rollout-{request.param}")
    (home / "workspace").mkdir()
    env = {"KEEL_CONFIG": str(project.config), "KEEL_ROLLOUT_REFRESH_S": "0"}
    if request.param == "langgraph-dev":
        with langgraph_dev(home, env=env) as url:
            yield [url], Settings(home=home)
        return
    keys = home / "api_keys.yaml"  # the bundled file is refused with the postgres profile: a copy of it
    shutil.copyfile(ROOT / "keel" / "server" / "dev_keys.yaml", keys)
    with scratch_databases("aegra", "keel") as (aegra_db, keel_db):
        env |= {
            "DATABASE_URL": aegra_db,
            "KEEL_PROFILE": "postgres",
            "KEEL_DATABASE_URL": keel_db,
            "KEEL_REDIS_URL": "redis://127.0.0.1:6379/0",
            "KEEL_REDIS_PREFIX": f"keel-rollout-{uuid.uuid4().hex[:8]}:",
            "KEEL_API_KEYS_FILE": str(keys),
        }
        with aegra_serve(home, env, replicas=2) as urls:
            yield urls, Settings(profile="postgres", database_url=keel_db, home=home)


async def _run(url: str, key: str) -> dict[str, Any]:
    client = get_client(url=url, api_key=key)
    thread = (await client.threads.create())["thread_id"]
    return await client.runs.wait(thread, "keel", input={"messages": [{"role": "human", "content": TASK}]})


async def _execution(settings: Settings, execution_id: str) -> Any:
    records = Records.from_url(settings.records_url)
    try:
        return await records.get_execution(execution_id)
    finally:
        await records.close()


async def test_runs_execute_their_arms_version_and_the_failing_arm_is_stopped(
    live: tuple[list[str], Settings], project: RolloutProject
) -> None:
    urls, settings = live
    first, other = urls[0], urls[-1]  # two replicas on Aegra: the stop made on one holds on the other
    async with httpx.AsyncClient(base_url=first, timeout=30) as http:
        r = await http.get("/keel/rollout", headers={"x-api-key": ALICE})
        assert r.status_code == 403  # only admins see the rollout
        r = await http.get("/keel/rollout", headers={"x-api-key": OPS})
        assert r.status_code == 200, r.text
        arms = {a["arm"]: a for a in r.json()["arms"]}
        assert arms["b"]["allowed_users"] == 1 and not arms["b"]["stopped"]

        # bob (weight 0 for b) runs A and succeeds; alice (allow-listed) runs B, whose policy refuses her.
        bob = await _run(first, BOB)
        ex = await _execution(settings, bob["execution_id"])
        assert (bob["status"], ex.arm, ex.version) == ("succeeded", "a", arms["a"]["version"])
        alice = await _run(other, ALICE)
        ex = await _execution(settings, alice["execution_id"])
        assert (alice["status"], ex.arm, ex.version) == ("failed", "b", arms["b"]["version"])

        # min_runs 1: that run stopped B (on the replica it ran on); alice's next run is on A, anywhere.
        r = await http.get("/keel/rollout", headers={"x-api-key": OPS})
        b = next(a for a in r.json()["arms"] if a["arm"] == "b")
        assert b["stopped"] and b["stopped_by"] == "keel-guard-rail", b
        again = await _run(first, ALICE)
        assert again["status"] == "succeeded"
        assert (await _execution(settings, again["execution_id"])).arm == "a"

        # Admins change it (a second stop is a conflict); a user may not.
        assert (await http.post("/keel/rollout/b/resume", headers={"x-api-key": ALICE})).status_code == 403
        r = await http.post("/keel/rollout/b/resume", headers={"x-api-key": OPS})
        assert r.status_code == 200 and not next(a for a in r.json()["arms"] if a["arm"] == "b")["stopped"]
        r = await http.put("/keel/rollout/b", headers={"x-api-key": OPS}, json={"weight": 5})
        assert next(a for a in r.json()["arms"] if a["arm"] == "b")["weight"] == 5
        r = await http.post("/keel/rollout/b/stop", headers={"x-api-key": OPS}, json={"reason": "by hand"})
        assert r.status_code == 200
        r = await http.post("/keel/rollout/b/stop", headers={"x-api-key": OPS}, json={"reason": "again"})
        assert r.status_code == 409
        r = await http.post("/keel/rollout/a/stop", headers={"x-api-key": OPS}, json={})
        assert r.status_code == 409 and "stable" in r.json()["detail"]
        r = await http.put("/keel/rollout/zz", headers={"x-api-key": OPS}, json={"weight": 1})
        assert r.status_code == 404
    await asyncio.sleep(0)
