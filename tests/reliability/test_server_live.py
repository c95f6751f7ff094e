"""keel on a real `langgraph dev` (issue 11): every server run checkpoints each step whatever durability
the client asks for (item 1), and runs queued across a server restart complete (item 8)."""

from __future__ import annotations

from pathlib import Path

import pytest
from langgraph_sdk import get_client
from live_server import langgraph_dev

pytestmark = pytest.mark.slow
ALICE = "alice-dev-key"
TASK = "read shared/handbook.md"


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "keel-home"
    (home / "workspace" / "home" / "alice").mkdir(parents=True)
    (home / "workspace" / "shared").mkdir(parents=True)
    (home / "workspace" / "shared" / "handbook.md").write_text("# Handbook\nBe kind.\n")
    return home


async def test_server_runs_checkpoint_every_step_whatever_the_client_asks(tmp_path: Path):
    durability = "exit"  # the client's wish: checkpoint only when the run ends
    with langgraph_dev(_home(tmp_path)) as url:
        alice = get_client(url=url, api_key=ALICE)
        thread = (await alice.threads.create())["thread_id"]
        payload = {"messages": [{"role": "human", "content": TASK}]}
        seen: list[str] = []
        async for part in alice.runs.stream(
            thread, "keel", input=payload, stream_mode="updates", durability=durability
        ):
            if part.event == "updates":
                seen.extend(part.data)
        assert seen[-1] == "finalize", seen
        history = await alice.threads.get_history(thread, limit=100)
    # one checkpoint per step (plus the input's), as with durability="sync"; "exit" alone writes one
    assert len(history) >= len(seen) + 1, (len(history), seen)


async def test_runs_queued_across_a_restart_all_complete(tmp_path: Path):
    home = _home(tmp_path)
    payload = {"messages": [{"role": "human", "content": TASK}]}
    with langgraph_dev(home) as url:
        alice = get_client(url=url, api_key=ALICE)
        threads = [(await alice.threads.create())["thread_id"] for _ in range(3)]
        runs = []
        for _ in range(3):
            for thread in threads:
                run = await alice.runs.create(thread, "keel", input=payload, multitask_strategy="enqueue")
                runs.append((thread, run["run_id"]))
    # stopped with runs still queued: the restarted server's queue picks them up while keel starts
    with langgraph_dev(home) as url:
        alice = get_client(url=url, api_key=ALICE)
        for thread, run_id in runs:
            await alice.runs.join(thread, run_id)
        statuses = [(await alice.runs.get(thread, run_id))["status"] for thread, run_id in runs]
    log = (home / "server.log").read_text()
    assert "BlockingError" not in log, log[-3000:]
    assert statuses == ["success"] * len(runs), statuses
