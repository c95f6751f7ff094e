"""Where the shared peer harness (`peer_bench.py`) is, and its fake model and tools loaded as a module.

The harness lives beside the project, not in it: `$PEER_BENCH` (a file) when set and not empty, and then
only there; else `../shared/bench/peer_bench.py` from the project root, else
`/work/shared/bench/peer_bench.py`. A clean
clone elsewhere (CI in a temp folder) may have none: `find()` then returns None and the callers say so in
one line; `load_or_local()` falls back to keel's own scripted model, which answers the same way (4 `echo`
calls, then an answer; priced under the harness model's name), so the plug-in still runs.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from pathlib import Path
from typing import Any

__all__ = ["ROOT", "candidates", "find", "load", "load_or_local", "model_calls"]

ROOT = Path(__file__).resolve().parents[1]
STEPS = 5


def candidates() -> list[Path]:
    """The places looked at, in order."""
    env = os.environ.get("PEER_BENCH") or os.environ.get("KEEL_PEER_BENCH")
    if env:
        return [Path(env)]
    return [ROOT.parent / "shared" / "bench" / "peer_bench.py", Path("/work/shared/bench/peer_bench.py")]


def find() -> Path | None:
    """The first harness file that exists, or None."""
    return next((path for path in candidates() if path.is_file()), None)


def load(path: Path) -> types.ModuleType:
    """The harness file as the module `peer_bench` (its fake model, tools and input)."""
    if "peer_bench" in sys.modules:
        return sys.modules["peer_bench"]
    spec = importlib.util.spec_from_file_location("peer_bench", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load the peer harness from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["peer_bench"] = module
    spec.loader.exec_module(module)
    return module


class _Local:
    """The harness's surface that keel's own scripts use, over keel's scripted fake model."""

    @staticmethod
    def FakeToolCallingModel(steps: int = STEPS, sleep_s: float = 0.0) -> Any:  # noqa: N802 (the harness's name)
        return _counting_model(steps, sleep_s)

    @staticmethod
    def make_tools() -> list[Any]:
        from langchain_core.tools import tool

        @tool
        async def echo(x: str) -> str:
            """Echo the input back (trivial tool the fake model calls)."""
            return f"echo: {x}"

        @tool
        async def delete_records(table: str) -> str:
            """Dangerous tool guarded by human-in-the-loop; never called by the fake model."""
            return f"deleted {table}"

        return [echo, delete_records]

    @staticmethod
    def new_input() -> dict[str, Any]:
        return {"messages": [{"role": "user", "content": "Process the ticket from alice@example.com."}]}


def _counting_model(steps: int, sleep_s: float) -> Any:
    """keel's FakeChatModel answering as the harness's model does: a pure function of the tool results
    seen since the last user message, so every run makes exactly `steps` calls; `calls` counts them."""
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

    from keel.testing.fake_model import FakeChatModel, Slow

    def reply(messages: list[Any]) -> AIMessage:
        seen = 0
        for message in reversed(messages):
            if isinstance(message, HumanMessage):
                break
            seen += isinstance(message, ToolMessage)
        if seen < steps - 1:
            call = {"name": "echo", "args": {"x": f"step {seen}"}, "id": f"call_{seen}", "type": "tool_call"}
            return AIMessage(content="", tool_calls=[call])
        return AIMessage(content=f"done after {seen} tool calls")

    turn = Slow(sleep_s, reply) if sleep_s else reply
    return FakeChatModel([turn] * 1_000_000, model_name="fake-tool-calling", usage=(0, 0))


def load_or_local() -> tuple[Any, Path | None]:
    """The harness module and its path, or keel's local stand-in and None when no harness is found."""
    path = find()
    return (load(path), path) if path else (_Local(), None)


def model_calls(model: Any) -> int:
    """Model calls made so far by either model (the harness's `calls` is a count, keel's a list)."""
    calls = model.calls
    return calls if isinstance(calls, int) else len(calls)
