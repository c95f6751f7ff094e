"""Honest outcomes (issue 11, item 6): exit codes per outcome class, model failures that name their cause,
a pool that runs dry counted as a store failure and never as the model's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from langchain_core.messages import HumanMessage
from typer.testing import CliRunner

from keel.cli import app
from keel.context import RunContext
from keel.models import make_chat_model
from keel.nodes._shared import ModelCallFailed, ModelCalls, call_model
from keel.settings import Settings
from keel.testing.fake_model import Slow, tool_call

UNREACHABLE = "http://127.0.0.1:9/v1"


async def test_every_tool_call_refused_is_not_a_plain_success(make_keel):
    turns = [tool_call("write_file", path="shared/handbook.md", content="defaced"), "I was not allowed."]
    async with make_keel(turns) as keel:
        out = await keel.run("edit the handbook", user_id="alice")
        assert (out.status, out.terminated_reason) == ("failed", "tools_refused")
        ex = await keel.records.get_execution(out.execution_id)
        assert (ex.status, ex.terminated_reason, ex.succeeded) == ("failed", "tools_refused", False)


async def test_a_run_with_one_tool_done_still_succeeds(make_keel):
    turns = [tool_call("read_file", path="shared/handbook.md"), "Deploy on Tuesdays."]
    async with make_keel(turns) as keel:
        out = await keel.run("what does the handbook say", user_id="alice")
        assert (out.status, out.terminated_reason) == ("succeeded", None)


async def test_unreachable_model_names_its_cause_in_record_and_answer(settings: Settings, workspace: Path):
    from keel.app.service import Keel

    s = settings.model_copy(update={"model_provider": "openai", "openai_base_url": UNREACHABLE})
    async with Keel.open(s, model=make_chat_model(s), model_name="fake-model") as keel:
        out = await keel.run("hello", user_id="alice")
        assert (out.status, out.terminated_reason) == ("terminated", "llm_unavailable")
        ex = await keel.records.get_execution(out.execution_id)
        assert "ConnectError: " in ex.error and "127.0.0.1:9" in ex.error, ex.error
        assert "model is unavailable right now (" in out.answer, out.answer
        assert "ConnectError: " in out.answer and "127.0.0.1:9" in out.answer


async def test_model_timeout_says_after_how_long(make_keel):
    async with make_keel([Slow(5, "late")], model_timeout_s=0.2) as keel:
        out = await keel.run("hello", user_id="alice")
        assert out.terminated_reason == "llm_unavailable"
        ex = await keel.records.get_execution(out.execution_id)
        assert ex.error == "timeout after 0.2 s"
        assert "(timeout after 0.2 s)" in out.answer


async def test_model_failure_detail_reaches_the_log(make_keel, capsys):
    async with make_keel([ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 9)")]) as keel:
        await keel.run("hello", user_id="alice")
    logged = capsys.readouterr()
    lines = [line for line in (logged.out + logged.err).splitlines() if "model_call_failed" in line]
    assert lines and "ConnectionRefusedError" in lines[0] and "127.0.0.1" in lines[0], lines


async def test_exhausted_records_pool_is_a_store_failure_not_the_model(make_keel):
    async with make_keel(["never asked"], records_pool_size=1, records_pool_timeout_s=0.2) as keel:
        b = keel.backends
        run = RunContext(user_id="alice", role="user", tenant="default", execution_id="ex-pool", version="t")
        config = {"configurable": {"thread_id": "t-pool"}}
        async with b.records.engine.connect() as held:  # the pool's only connection, held
            await held.execute(sa.text("SELECT 1"))
            with pytest.raises(ModelCallFailed) as failed:
                calls = ModelCalls(
                    settings=b.settings,
                    prices=b.prices,
                    guards=b.guards,
                    telemetry=b.telemetry,
                    model_name=b.model_name,
                )
                await call_model(calls, b.model, [HumanMessage("hi")], {}, config, run=run)
        assert failed.value.reason == "guard_unavailable", failed.value.detail
        assert "TimeoutError" in failed.value.detail
        assert keel.fake_model.calls == []  # the model was never called, and no fallback was due


@pytest.fixture
def cli(tmp_path: Path):
    runner = CliRunner()
    env = {"KEEL_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    return lambda *args, **extra: runner.invoke(app, list(args), env={**env, **extra})


def test_cli_exit_code_for_an_unavailable_model(cli):
    result = cli(
        "run",
        "hello",
        "--user",
        "alice",
        "--json",
        KEEL_MODEL_PROVIDER="openai",
        KEEL_OPENAI_BASE_URL=UNREACHABLE,
        KEEL_MODEL="gpt-4o-mini",
    )
    assert result.exit_code == 5, result.output
    out = json.loads(result.stdout)
    assert out["terminated_reason"] == "llm_unavailable" and "ConnectError" in out["answer"]


def test_cli_exit_code_for_a_run_stopped_by_a_limit(cli):
    result = cli("run", "hello", "--user", "alice", "--json", KEEL_RUN_TIMEOUT_S="0.001")
    assert result.exit_code == 4, result.output
    assert json.loads(result.stdout)["terminated_reason"] == "timeout"


@pytest.mark.parametrize(
    ("status", "reason", "code"),
    [
        ("succeeded", None, 0),
        ("awaiting_approval", None, 3),
        ("terminated", "budget_exceeded", 4),
        ("terminated", "run_cost_cap", 4),
        ("terminated", "max_steps", 4),
        ("terminated", "timeout", 4),
        ("terminated", "llm_unavailable", 5),
        ("terminated", "guard_unavailable", 5),
        ("failed", "tools_refused", 6),
    ],
)
def test_one_documented_exit_code_per_outcome_class(status, reason, code):
    from keel.cli._common import EXIT_CODES_HELP, exit_code_of

    assert exit_code_of(status, reason) == code
    assert f"{code} " in EXIT_CODES_HELP


def test_every_stop_reason_has_its_exit_code_and_words_in_the_one_table():
    from keel.cli._common import EXIT_CODES_HELP, exit_code_of
    from keel.stop_reasons import KEEL_STOP_REASONS, STOP_REASONS, stop_text

    limits = {"max_steps": 3, "run_timeout_s": 60.0, "run_cost_cap": 0.5}
    for name in KEEL_STOP_REASONS:
        row = STOP_REASONS[name]
        status = "failed" if row.outcome == "refused" else "terminated"
        assert exit_code_of(status, name) == row.exit_code
        assert f"{row.exit_code} " in EXIT_CODES_HELP and name in EXIT_CODES_HELP
        told = stop_text(name, thread="th-1", error="the cause", limits=limits)
        assert told and "{" not in told, (name, told)
