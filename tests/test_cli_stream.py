"""`keel run` shows a run as it goes: node steps, the model's tokens as they arrive, a spinner only in a
terminal; `Keel.run` asks the model to stream only when someone listens for tokens."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from keel.app.demo import seed_demo_files
from keel.app.service import Keel
from keel.cli import app
from keel.cli.progress import RunProgress
from keel.settings import Settings
from keel.testing.openai_server import FakeOpenAIServer, Reply


def _settings(tmp_path: Path, server: FakeOpenAIServer) -> Settings:
    return Settings(
        home=tmp_path,
        model_provider="openai",
        openai_base_url=server.base_url,
        model="fake-model",
        openai_api_key="test-key",
        memory_enabled=False,
    )


async def test_tokens_arrive_in_pieces_and_make_the_answer(tmp_path: Path, server: FakeOpenAIServer) -> None:
    answer = "We ship on Tuesdays, after the review."
    server.enqueue(Reply(content="1. answer", usage=(10, 2)), Reply(content=answer, usage=(20, 8)))
    heard: list[tuple[str, str]] = []
    steps: list[str] = []
    async with Keel.open(_settings(tmp_path, server)) as keel:
        out = await keel.run(
            "when?",
            user_id="alice",
            on_step=lambda n, u: steps.append(n),
            on_token=lambda n, t: heard.append((n, t)),
        )
        ex = await keel.records.get_execution(out.execution_id)
    assert out.answer == answer and out.path == steps
    decided = [t for n, t in heard if n == "decide"]
    assert len(decided) > 1 and "".join(decided) == answer  # streamed in pieces, nothing lost
    assert "".join(t for n, t in heard if n == "plan") == "1. answer"
    assert all(r.get("stream") for r in server.requests)
    assert (ex.input_tokens, ex.output_tokens) == (30, 10)  # usage still counted when streaming


async def test_without_a_token_listener_the_model_is_not_asked_to_stream(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    server.enqueue(Reply(content="plan"), Reply(content="done"))
    async with Keel.open(_settings(tmp_path, server)) as keel:
        out = await keel.run("hi", user_id="alice")
    assert out.answer == "done" and not any(r.get("stream") for r in server.requests)


def test_keel_run_prints_steps_and_the_models_words_then_the_outcome(tmp_path: Path) -> None:
    env = {"KEEL_HOME": str(tmp_path), "KEEL_MEMORY_ENABLED": "false"}
    seed_demo_files(tmp_path / "workspace")
    result = CliRunner().invoke(app, ["run", "list shared", "--user", "alice"], env=env)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    plan = next(i for i, line in enumerate(lines) if line.startswith("plan "))
    assert "Plan:" in lines[plan]  # the plan's words, as the model gave them
    assert lines.index("decide           calls list_files(path='shared')") > plan
    assert lines.index("succeeded") > lines.index("finalize")
    assert lines[-1].startswith("thread ") and "execution " in lines[-1]
    as_json = CliRunner().invoke(app, ["run", "list shared", "--user", "alice", "--json"], env=env)
    assert json.loads(as_json.stdout)["path"][0] == "recall"  # only the JSON object, nothing while it ran


def _progress(terminal: bool) -> tuple[RunProgress, io.StringIO]:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=terminal, width=60, soft_wrap=True)
    return RunProgress(console, spinner_after=0.01), buffer


async def test_the_spinner_turns_only_in_a_terminal_and_only_while_waiting() -> None:
    progress, _ = _progress(terminal=True)
    with progress:
        assert progress._spinner is None  # not at once: a short wait shows nothing
        await asyncio.sleep(0.05)
        assert progress._spinner is not None
        progress.on_token("decide", "Hel")
        assert progress._spinner is None  # words stop it
        await asyncio.sleep(0.05)
        assert progress._spinner is None  # and no spinner in the middle of a reply
        progress.on_step("decide", {})
        await asyncio.sleep(0.05)
        assert progress._spinner is not None
    assert progress._spinner is None
    piped, buffer = _progress(terminal=False)
    with piped:
        await asyncio.sleep(0.05)
        assert piped._spinner is None
        piped.on_token("decide", "Hello, ")
        piped.on_token("decide", "world.")
        piped.on_step("decide", {})
        piped.on_step("finalize", {})
    assert buffer.getvalue().splitlines() == [
        "decide           Hello, world.",
        "finalize",
    ]  # no bare "decide" again
