"""keel's whole-run overhead against LangChain's `create_agent`, on the same scripted rounds.

Each round is one request: the model asks for `read_file`, the tool runs, the model answers. Both agents
get the same deterministic fake model and a tool doing the same file read. The baseline keeps its
checkpoints in memory and writes nothing else; keel runs its full guarded graph on the embedded profile
(SQLite checkpoints, execution record, permission decision, audit rows, tool result row). Results are
ratios measured in the same process and the same run, never absolute timings to assert on.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from contextlib import AsyncExitStack
from pathlib import Path

from langchain.agents import create_agent
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from keel.app.service import Keel
from keel.settings import Settings
from keel.testing.fake_model import FakeChatModel

__all__ = ["run"]

ROUNDS = 40
WARMUP = 5


def _turn(messages: list[BaseMessage]) -> AIMessage:
    """Read the handbook once per request, then answer."""
    last_human = max(i for i, m in enumerate(messages) if isinstance(m, HumanMessage))
    if any(isinstance(m, ToolMessage) for m in messages[last_human:]):
        return AIMessage(content="The handbook says to deploy on Tuesdays.")
    call_id = f"call_{uuid.uuid4().hex[:12]}"
    return AIMessage(
        content="", tool_calls=[{"name": "read_file", "args": {"path": "shared/handbook.md"}, "id": call_id}]
    )


def _model(rounds: int) -> FakeChatModel:
    return FakeChatModel([_turn] * (2 * rounds), plan="1. read the handbook")


def _stats(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    return statistics.mean(ordered), ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.95) - 1]


async def _baseline(
    root: Path, rounds: int, sqlite: Path | None = None, durability: str = "async"
) -> list[float]:
    handbook = root / "shared" / "handbook.md"

    @tool
    def read_file(path: str) -> str:
        """Read a text file from the workspace."""
        return (root / path).read_text() if (root / path) == handbook else "no such file"

    async with AsyncExitStack() as stack:
        saver = InMemorySaver()
        if sqlite is not None:
            saver = await stack.enter_async_context(AsyncSqliteSaver.from_conn_string(str(sqlite)))
        agent = create_agent(_model(rounds), tools=[read_file], checkpointer=saver)
        samples = []
        for _ in range(rounds):
            config = {"configurable": {"thread_id": str(uuid.uuid4())}}
            started = time.perf_counter()
            task = {"messages": [HumanMessage("what does the handbook say?")]}
            await agent.ainvoke(task, config, durability=durability)
            samples.append(time.perf_counter() - started)
        return samples


async def _keel(home: Path, rounds: int, durability: str = "sync", **settings: object) -> list[float]:
    samples = []
    async with Keel.open(
        Settings(home=home, **settings), model=_model(rounds), model_name="fake-model"
    ) as keel:
        keel.durability = durability
        for _ in range(rounds):
            started = time.perf_counter()
            out = await keel.run("what does the handbook say?", user_id="alice")
            samples.append(time.perf_counter() - started)
            assert out.status == "succeeded", out
    return samples


async def _measure() -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        (home / "workspace" / "shared").mkdir(parents=True)
        (home / "workspace" / "shared" / "handbook.md").write_text("# Handbook\nDeploy on Tuesdays.\n")
        await _baseline(home / "workspace", WARMUP)
        await _keel(home, WARMUP)
        return {
            "create_agent (in-memory checkpoints)": await _baseline(home / "workspace", ROUNDS),
            "create_agent (AsyncSqliteSaver checkpoints)": await _baseline(
                home / "workspace", ROUNDS, sqlite=home / "baseline.sqlite"
            ),
            "create_agent (AsyncSqliteSaver checkpoints, durability=sync)": await _baseline(
                home / "workspace", ROUNDS, sqlite=home / "baseline-sync.sqlite", durability="sync"
            ),
            "keel, embedded profile, plan on": await _keel(home, ROUNDS),
            "keel, embedded profile, plan on, durability=async (not crash-exact)": await _keel(
                home, ROUNDS, durability="async"
            ),
            "keel, embedded profile, plan off": await _keel(home, ROUNDS, plan_enabled=False),
            "keel, embedded profile, plan off, long-term memory off": await _keel(
                home, ROUNDS, plan_enabled=False, memory_enabled=False
            ),
        }


def run() -> str:
    """Measure and return a markdown section."""
    results = asyncio.run(_measure())
    base_mean = _stats(next(iter(results.values())))[0]
    lines = [
        "## Whole-run overhead vs `create_agent`",
        "",
        f"{ROUNDS} requests each (after {WARMUP} warm-up), one `read_file` call and one answer per request, "
        "same fake model. keel's extra work per request: a plan call (when on), execution record, permission "
        "decision, audit rows, tool-result row, budget reservation and settlement per model call, "
        "durable SQLite checkpoints (durability=sync unless the row says otherwise), and (unless off) "
        "long-term memory: the task embedded offline for "
        "recall, and the run embedded and stored in Chroma at the end.",
        "",
        "| agent | mean ms | p50 ms | p95 ms | mean ratio to create_agent |",
        "|---|---|---|---|---|",
    ]
    for name, samples in results.items():
        mean, p50, p95 = _stats(samples)
        lines.append(
            f"| {name} | {mean * 1e3:.1f} | {p50 * 1e3:.1f} | {p95 * 1e3:.1f} | {mean / base_mean:.2f}× |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(run())
