"""A drill worker for tests/reliability/test_effects_killed.py: runs or resumes one thread under a keel.yaml.

``python tests/reliability/_effects_worker.py '<json plan>'`` with settings, config, thread, user, mode
(`run` or `resume`) and the fake model's turns. Prints the outcome as one JSON line. The tools of
tests/data/effect_tools.py may kill this process (SIGKILL) in the middle of the run.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from langchain_core.messages import AIMessage
from sqlalchemy import text

from keel.app.service import Keel
from keel.config import load_config
from keel.settings import Settings
from keel.testing.fake_model import FakeChatModel


async def main(plan: dict) -> None:
    settings = Settings(**plan["settings"])
    turns = [
        t
        if isinstance(t, str)
        else AIMessage(content="", tool_calls=[{"name": n, "id": i, "args": a} for n, i, a in t])
        for t in plan["turns"]
    ]
    model = FakeChatModel(turns)
    config = load_config(plan["config"])
    async with Keel.open(settings, model=model, model_name="fake-model", config=config) as keel:
        async with keel.records.transaction() as conn:
            await conn.execute(
                text("CREATE TABLE IF NOT EXISTS effect_drill_notes (order_id TEXT, note TEXT)")
            )
        if plan["mode"] == "run":
            out = await keel.run("do the order", user_id=plan["user"], thread_id=plan["thread"])
        else:
            out = await keel.resume(plan["thread"])
    print(json.dumps({"status": out.status, "answer": out.answer}), flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
    asyncio.run(main(json.loads(sys.argv[1])))
