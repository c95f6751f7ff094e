"""A rollout on a live `langgraph dev`: a user's run executes their arm's version (the graph the server builds
for the run is that version's), the guard rails stop a failing arm, and admins (only) watch and change the
rollout through /keel/rollout."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from live_server import langgraph_dev

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


@pytest.fixture(scope="module")
def live(project: RolloutProject, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    home = tmp_path_factory.mktemp("rollout-server-home")
    (home / "workspace").mkdir()
    env = {"KEEL_CONFIG": str(project.config), "KEEL_ROLLOUT_REFRESH_S": "0"}
    with langgraph_dev(home, env=env) as url:
        yield url, home


async def _run(url: str, key: str) -> dict[str, Any]:
    client = get_client(url=url, api_key=key)
    thread = (await client.threads.create())["thread_id"]
    return await client.runs.wait(thread, "keel", input={"messages": [{"role": "human", "content": TASK}]})


async def _execution(home: Path, execution_id: str) -> Any:
    records = Records.from_url(Settings(home=home).records_url)
    try:
        return await records.get_execution(execution_id)
    finally:
        await records.close()


async def test_runs_execute_their_arms_version_and_the_failing_arm_is_stopped(
    live: tuple[str, Path], project: RolloutProject
) -> None:
    url, home = live
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        r = await http.get("/keel/rollout", headers={"x-api-key": ALICE})
        assert r.status_code == 403  # only admins see the rollout
        r = await http.get("/keel/rollout", headers={"x-api-key": OPS})
        assert r.status_code == 200, r.text
        arms = {a["arm"]: a for a in r.json()["arms"]}
        assert arms["b"]["allowed_users"] == 1 and not arms["b"]["stopped"]

        # bob (weight 0 for b) runs A and succeeds; alice (allow-listed) runs B, whose policy refuses her.
        bob = await _run(url, BOB)
        ex = await _execution(home, bob["execution_id"])
        assert (bob["status"], ex.arm, ex.version) == ("succeeded", "a", arms["a"]["version"])
        alice = await _run(url, ALICE)
        ex = await _execution(home, alice["execution_id"])
        assert (alice["status"], ex.arm, ex.version) == ("failed", "b", arms["b"]["version"])

        # min_runs 1: that run stopped B; alice's next run is on A.
        r = await http.get("/keel/rollout", headers={"x-api-key": OPS})
        b = next(a for a in r.json()["arms"] if a["arm"] == "b")
        assert b["stopped"] and b["stopped_by"] == "keel-guard-rail", b
        again = await _run(url, ALICE)
        assert again["status"] == "succeeded"
        assert (await _execution(home, again["execution_id"])).arm == "a"

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
