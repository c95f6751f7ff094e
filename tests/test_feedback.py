"""Feedback as its own table: one score per (execution, user), owner-or-admin only, the comment redacted,
its audit row in the same transaction, sent to LangSmith on the execution's run; from the library, the CLI
and `POST /keel/feedback` (on a real `langgraph dev`, with its real API-key auth)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from langgraph_sdk import get_client
from live_server import langgraph_dev
from typer.testing import CliRunner

from keel.cli import app
from keel.errors import NotFound
from keel.observability.langsmith import FEEDBACK_KEY, LangSmith, root_run_id
from keel.records import Records
from keel.settings import Settings

CANARY_KEY = "sk-proj-Qm4Vb8Nc2Xz7Lk1Jh5Gf9Ds3Aw6Er0"
ALICE, BOB, OPS = "alice-dev-key", "bob-dev-key", "ops-dev-key"


async def _alices_execution(keel: Any) -> str:
    out = await keel.run("say hello", user_id="alice")
    assert out.status == "succeeded"
    return out.execution_id


# -- the library (both profiles) -------------------------------------------------------------------------


async def test_the_owner_gives_feedback_and_changes_it_one_row_each_time_audited(make_keel):
    async with make_keel(["hello"]) as keel:
        execution = await _alices_execution(keel)
        first = await keel.feedback(execution, -1, "wrong file", user_id="alice", role="user")
        again = await keel.feedback(execution, 0.75, "better on reflection", user_id="alice", role="user")
        rows = await keel.records.feedback_for(execution)
        audit = [r for r in await keel.records.audit_for(execution_id=execution) if r.event == "feedback"]
        version = (await keel.records.get_execution(execution)).version  # the agent version it ran as
    assert first.score == Decimal("-1") and again.id == first.id
    assert [(r.user_id, r.score, r.comment, r.version) for r in rows] == [
        ("alice", Decimal("0.75"), "better on reflection", version)
    ]
    assert rows[0].created_at == first.created_at and rows[0].updated_at >= first.updated_at
    assert [(r.user_id, r.args) for r in audit] == [
        ("alice", {"score": -1, "comment": "wrong file"}),
        ("alice", {"score": 0.75, "comment": "better on reflection"}),
    ]


async def test_another_users_execution_is_not_found_and_an_admin_may_give_feedback(make_keel):
    async with make_keel(["hello"]) as keel:
        execution = await _alices_execution(keel)
        with pytest.raises(NotFound, match=f"no execution {execution}"):
            await keel.feedback(execution, 1, user_id="bob", role="user")
        with pytest.raises(NotFound, match="no execution nope"):
            await keel.feedback("nope", 1, user_id="bob", role="user")  # the same words: nothing revealed
        by_admin = await keel.feedback(execution, 1, user_id="ops", role="admin")
        rows = await keel.records.feedback_for(execution)
    assert by_admin.user_id == "ops" and [(r.user_id, r.role) for r in rows] == [("ops", "admin")]


@pytest.mark.parametrize("score", [7, -1.5, 1.0001, float("nan"), True, "1"])
async def test_a_score_outside_minus_one_to_one_is_refused_naming_the_rule(make_keel, score):
    async with make_keel(["hello"]) as keel:
        execution = await _alices_execution(keel)
        with pytest.raises(ValueError, match=r"score must be a number in \[-1, 1\]"):
            await keel.feedback(execution, score, user_id="alice", role="user")
        assert await keel.records.feedback_for(execution) == []


async def test_a_secret_in_the_comment_reaches_neither_the_table_nor_the_audit(make_keel):
    async with make_keel(["hello"]) as keel:
        execution = await _alices_execution(keel)
        row = await keel.feedback(
            execution, 1, f"works; my key is {CANARY_KEY}", user_id="alice", role="user"
        )
        stored = await keel.records.feedback_for(execution)
        audit = await keel.records.audit_for(execution_id=execution)
    assert CANARY_KEY not in (row.comment or "") and "[REDACTED]" in (row.comment or "")
    assert CANARY_KEY not in repr(stored) and CANARY_KEY not in repr(audit)


async def test_the_feedback_row_and_its_audit_row_commit_together(make_keel, monkeypatch):
    async with make_keel(["hello"]) as keel:
        execution = await _alices_execution(keel)
        audited = len(await keel.records.audit_for(execution_id=execution))

        async def audit_fails(*args: Any, **kwargs: Any) -> int:
            raise RuntimeError("audit append failed")

        monkeypatch.setattr(keel.records, "append_audit", audit_fails)
        with pytest.raises(RuntimeError, match="audit append failed"):
            await keel.feedback(execution, 1, user_id="alice", role="user")
        monkeypatch.undo()
        assert await keel.records.feedback_for(execution) == []  # rolled back with the audit row
        assert len(await keel.records.audit_for(execution_id=execution)) == audited


async def test_list_feedback_by_time_and_version(make_keel):
    async with make_keel(["hello", "again"]) as keel:
        one, two = await _alices_execution(keel), await _alices_execution(keel)
        a = await keel.feedback(one, 1, user_id="alice", role="user")
        await keel.feedback(two, 0, user_id="alice", role="user")
        since = await keel.records.list_feedback(since=a.updated_at)
        later = await keel.records.list_feedback(since=(await keel.records.feedback_for(two))[0].updated_at)
        other = await keel.records.list_feedback(version="v2")
    assert {r.execution_id for r in since} >= {one, two}
    assert one not in {r.execution_id for r in later} and two in {r.execution_id for r in later}
    assert other == []


# -- LangSmith ---------------------------------------------------------------------------------------------


class _FakeLangSmithClient:
    """Records `create_feedback` calls; `fail` makes every call raise (the API down)."""

    def __init__(self, *, fail: bool = False) -> None:
        self.calls: list[dict[str, Any]] = []
        self.fail = fail

    def read_project(self, *, project_name: str) -> Any:
        return type("Project", (), {"id": "project-1", "name": project_name})()

    def create_feedback(self, run_id: Any = None, key: str = "unnamed", **kwargs: Any) -> None:
        if self.fail:
            raise ConnectionError("LangSmith is unreachable")
        self.calls.append({"run_id": run_id, "key": key, **kwargs})


async def test_feedback_is_sent_to_langsmith_on_the_executions_run(make_keel):
    client = _FakeLangSmithClient()
    async with make_keel(["hello"]) as keel:
        execution = await _alices_execution(keel)
        keel.backends.telemetry.langsmith = LangSmith(client, "keel-test")  # type: ignore[arg-type]
        await keel.feedback(execution, 0.5, f"ok {CANARY_KEY}", user_id="alice", role="user")
        keel.backends.telemetry.langsmith = None
    run = root_run_id(execution)
    assert client.calls == [
        {
            "run_id": run,
            "trace_id": run,
            "session_id": "project-1",
            "key": FEEDBACK_KEY,
            "score": 0.5,
            "comment": "ok [REDACTED]",
        }
    ]


async def test_langsmith_failing_never_fails_the_feedback(make_keel, caplog):
    async with make_keel(["hello"]) as keel:
        execution = await _alices_execution(keel)
        keel.backends.telemetry.langsmith = LangSmith(_FakeLangSmithClient(fail=True), "keel-test")  # type: ignore[arg-type]
        with caplog.at_level(logging.WARNING, logger="keel.observability.langsmith"):
            row = await keel.feedback(execution, 1, user_id="alice", role="user")
        keel.backends.telemetry.langsmith = None
        assert [r.score for r in await keel.records.feedback_for(execution)] == [row.score]
    assert "not sent to LangSmith: LangSmith is unreachable" in caplog.text


# -- the CLI -----------------------------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path):
    runner = CliRunner()
    env = {"KEEL_HOME": str(tmp_path / "home"), "COLUMNS": "200"}

    def invoke(*args: str) -> Any:
        return runner.invoke(app, list(args), env=env)

    return invoke


def test_cli_feedback_json_plain_and_refusals(cli):
    ran = cli("run", "say hello", "--user", "alice", "--json")
    assert ran.exit_code == 0, ran.output
    execution = json.loads(ran.stdout)["execution_id"]

    given = cli("feedback", execution, "-1", "--user", "alice", "--comment", f"no; {CANARY_KEY}", "--json")
    assert given.exit_code == 0, given.output
    row = json.loads(given.stdout)
    assert (row["execution_id"], row["user_id"], row["score"]) == (execution, "alice", -1)
    listed = json.loads(cli("versions", "list", "--json").stdout)
    assert row["comment"] == "no; [REDACTED]" and row["version"] == listed[0]["version_id"]  # the run's

    changed = cli("feedback", execution, "0.5", "--user", "alice")
    assert changed.exit_code == 0, changed.output
    assert changed.stdout == f"feedback +0.5 on execution {execution} by alice\n"  # piped: plain, one line

    other = cli("feedback", execution, "1", "--user", "bob")
    assert other.exit_code == 1 and f"no execution {execution}" in other.stderr
    bad = cli("feedback", execution, "2", "--user", "alice")
    assert bad.exit_code == 1 and "score must be a number in [-1, 1]" in bad.stderr
    assert cli("feedback", execution, "high", "--user", "alice").exit_code == 2  # a usage error

    admin = cli("feedback", execution, "1", "--user", "ops", "--role", "admin", "--json")
    assert admin.exit_code == 0 and json.loads(admin.stdout)["user_id"] == "ops"


# -- the route, on a real server ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    home = tmp_path_factory.mktemp("keel-feedback-home")
    (home / "workspace" / "home" / "alice").mkdir(parents=True)
    with langgraph_dev(home) as url:
        yield url, home


async def _feedback_rows(home: Path, execution: str) -> list:
    records = Records.from_url(Settings(home=home).records_url)
    try:
        return await records.feedback_for(execution)
    finally:
        await records.close()


@pytest.mark.slow
async def test_the_route_lets_the_owner_and_admins_give_feedback_and_hides_others_executions(server):
    url, home = server
    alice_sdk = get_client(url=url, api_key=ALICE)
    thread = (await alice_sdk.threads.create())["thread_id"]
    payload = {"messages": [{"role": "human", "content": "list ~/"}]}
    run = await alice_sdk.runs.create(thread, "keel", input=payload)
    await alice_sdk.runs.join(thread, run["run_id"])
    execution = (await alice_sdk.threads.get_state(thread))["values"]["execution_id"]
    # The server's run id is the execution's: the root run LangSmith traces, where feedback is sent.
    assert root_run_id(execution) == UUID(run["run_id"])
    keys = {name: key for name, key in (("alice", ALICE), ("bob", BOB), ("ops", OPS))}
    clients = {n: httpx.Client(base_url=url, headers={"x-api-key": k}, timeout=30) for n, k in keys.items()}
    try:
        post = {n: (lambda body, c=c: c.post("/keel/feedback", json=body)) for n, c in clients.items()}
        mine = post["alice"]({"execution_id": execution, "score": 1, "comment": f"great {CANARY_KEY}"})
        assert mine.status_code == 201, mine.text
        assert mine.json()["score"] == 1 and mine.json()["comment"] == "great [REDACTED]"
        changed = post["alice"]({"execution_id": execution, "score": 0.25})
        assert changed.status_code == 201 and changed.json()["id"] == mine.json()["id"]
        hidden = post["bob"]({"execution_id": execution, "score": -1})
        unknown = post["bob"]({"execution_id": "no-such-execution", "score": -1})
        assert (hidden.status_code, hidden.json()["detail"]) == (404, f"no execution {execution}")
        assert unknown.status_code == 404
        bad = post["alice"]({"execution_id": execution, "score": 1.5})
        assert bad.status_code == 422 and "score must be a number in [-1, 1]" in bad.json()["detail"]
        assert post["ops"]({"execution_id": execution, "score": -1}).status_code == 201
    finally:
        for c in clients.values():
            c.close()
    rows = await _feedback_rows(home, execution)
    assert sorted((r.user_id, r.score) for r in rows) == [("alice", Decimal("0.25")), ("ops", Decimal("-1"))]


async def test_records_redact_the_comment_whoever_writes_it(make_keel):
    async with make_keel(["hello"]) as keel:
        execution = await _alices_execution(keel)
        ex = await keel.records.get_execution(execution)
        assert ex is not None
        row = await keel.records.add_feedback(
            execution_id=execution,
            thread_id=ex.thread_id,
            user_id="alice",
            role="user",
            score=1,
            comment=f"key {CANARY_KEY}",
            version=ex.version,
        )
        stored = await keel.records.feedback_for(execution)
    assert row.comment == "key [REDACTED]" and [r.comment for r in stored] == ["key [REDACTED]"]
