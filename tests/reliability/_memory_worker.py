"""A drill worker for tests/reliability/test_memory_killed.py: one run with long-term memory on, then SIGKILL.

``python tests/reliability/_memory_worker.py '<json plan>'`` with settings, user, task and `kill`:
- `before_writer`: the memory writer's task never starts; the process kills itself once the run returned
  (finalize committed the execution and its queued memory);
- `writing`: the writer's task claims the row and the process dies as it starts the Chroma write.
The parent finds the execution in the records (the `writing` kill may come before the run returns).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

from keel.app.service import Keel
from keel.memory import writer
from keel.settings import Settings
from keel.testing.fake_model import FakeChatModel


def _die(*_args: object, **_kwargs: object) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


async def main(plan: dict) -> None:
    if plan["kill"] == "before_writer":
        writer.MemoryWriter.start = lambda self: None  # type: ignore[method-assign]
    else:
        write = writer.write_run_memories

        async def write_or_die(memory: object, rows: list) -> object:
            # Rows other runs left queued in a shared database are written as usual: the process dies
            # only in the write of a batch holding this run's memory (the claim is committed by then).
            if any(row.user_id == plan["user"] for row in rows):
                _die()
            return await write(memory, rows)

        writer.write_run_memories = write_or_die  # type: ignore[assignment]
    settings = Settings(**plan["settings"])
    async with Keel.open(
        settings, model=FakeChatModel(["Deploys happen on Tuesdays."]), model_name="fake-model"
    ) as keel:
        await keel.run(plan["task"], user_id=plan["user"])
        if plan["kill"] == "before_writer":
            _die()
        await asyncio.sleep(30)  # the writer's task claims the row and dies in the write
    raise SystemExit("the memory writer never wrote: the drill expected to die first")


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
