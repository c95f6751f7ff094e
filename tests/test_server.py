"""keel on `langgraph dev`: auth, owner filtering, the approvals inbox, health, metrics and Studio schemas.

One server per module (a subprocess on a free port, KEEL_HOME outside the project so nothing it writes
makes the dev server reload), driven with langgraph-sdk and plain HTTP like a real client.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import NotFoundError, PermissionDeniedError
from live_server import langgraph_dev

from keel.records import Records
from keel.settings import Settings

ALICE, BOB, OPS = "alice-dev-key", "bob-dev-key", "ops-dev-key"
TASK = "read shared/handbook.md then delete ~/old-draft.md"

pytestmark = pytest.mark.slow
_PROTECTED = (("POST", "/threads/search"), ("GET", "/keel/health"), ("GET", "/keel/approvals"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    home = tmp_path_factory.mktemp("keel-server-home")
    (home / "workspace" / "home" / "alice").mkdir(parents=True)
    (home / "workspace" / "shared").mkdir(parents=True)
    (home / "workspace" / "home" / "alice" / "old-draft.md").write_text("old draft\n")
    (home / "workspace" / "shared" / "handbook.md").write_text("# Handbook\nBe kind.\n")
    with langgraph_dev(home) as url:
        yield url, home


def _http(url: str, key: str | None = None) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"x-api-key": key} if key else {}, timeout=30)


async def _pause_for_approval(url: str, task: str = TASK) -> tuple[str, dict]:
    """Alice starts a run that stops at an approval interrupt; returns the thread and the request."""
    alice = get_client(url=url, api_key=ALICE)
    thread = (await alice.threads.create())["thread_id"]
    seen: list[str] = []
    interrupt = None
    payload = {"messages": [{"role": "human", "content": task}]}
    async for part in alice.runs.stream(thread, "keel", input=payload, stream_mode="updates"):
        if part.event == "updates":
            seen.extend(part.data)
            if "__interrupt__" in part.data:
                interrupt = part.data["__interrupt__"][0]["value"]
    assert seen[:3] == ["recall", "plan", "decide"] and "permission_check" in seen
    assert interrupt is not None and interrupt["tool"] == "delete_file"
    return thread, interrupt


def test_missing_or_unknown_key_is_a_bare_401(server: tuple[str, Path]) -> None:
    url, _ = server
    with _http(url) as anon, _http(url, "not-a-key") as wrong:
        for client in (anon, wrong):
            for method, path in _PROTECTED:
                r = client.request(method, path, json={} if method == "POST" else None)
                assert r.status_code == 401, (path, r.text)
                assert "alice" not in r.text and "yaml" not in r.text.lower()


async def test_run_pauses_and_an_approver_resumes_it_through_the_inbox(server: tuple[str, Path]) -> None:
    url, home = server
    draft = home / "workspace" / "home" / "alice" / "old-draft.md"
    thread, request = await _pause_for_approval(url)
    approval_id = request["approval_id"]
    assert draft.exists()
    with _http(url, ALICE) as alice, _http(url, BOB) as bob, _http(url, OPS) as ops:
        mine = alice.get("/keel/approvals").json()["approvals"]
        assert [a for a in mine if a["approval_id"] == approval_id] == [request]  # one view, one builder
        assert approval_id not in [a["approval_id"] for a in bob.get("/keel/approvals").json()["approvals"]]
        assert alice.post(f"/keel/approvals/{approval_id}", json={"decision": "approve"}).status_code == 403
        assert bob.post(f"/keel/approvals/{approval_id}", json={"decision": "approve"}).status_code == 404
        assert approval_id in [a["approval_id"] for a in ops.get("/keel/approvals").json()["approvals"]]
        r = ops.post(f"/keel/approvals/{approval_id}", json={"decision": "approve", "reason": "stale draft"})
        assert r.status_code == 202, r.text
        assert r.json()["approval"]["status"] == "approved" and r.json()["approval"]["decided_by"] == "ops"
        again = ops.post(f"/keel/approvals/{approval_id}", json={"decision": "reject"})
        assert again.status_code == 409
        run_id = r.json()["run_id"]
    client = get_client(url=url, api_key=ALICE)
    await client.runs.join(thread, run_id)
    state = await client.threads.get_state(thread)
    assert state["next"] == [] and state["values"]["status"] == "succeeded"
    assert "delete_file" in state["values"]["tools_used"]
    assert not draft.exists()  # the side effect was done, once, after the approval
    audit = await _audit(home, thread)
    assert [(r.event, r.approver) for r in audit if r.event.startswith("approval_")] == [
        ("approval_refused", "alice"),  # a requester may not decide
        ("approval_refused", "bob"),  # not his to see: a 404 to him, a row for the auditors
        ("approval_decision", "ops"),
    ]
    with _http(url, ALICE) as alice:
        done = alice.get("/keel/approvals", params={"status": "approved"}).json()["approvals"]
        assert [a["decided_by"] for a in done if a["approval_id"] == approval_id] == ["ops"]
        execution = request_execution(done, approval_id)
        fb = alice.post("/keel/feedback", json={"execution_id": execution, "score": 1, "comment": "thanks"})
        assert fb.status_code == 201, fb.text


def request_execution(rows: list[dict], approval_id: str) -> str:
    return next(a["execution_id"] for a in rows if a["approval_id"] == approval_id)


async def test_a_decision_for_other_args_is_a_409_and_records_nothing(server: tuple[str, Path]) -> None:
    url, home = server
    (home / "workspace" / "home" / "alice" / "old-draft.md").write_text("old draft\n")
    thread, request = await _pause_for_approval(url)
    approval_id = request["approval_id"]
    with _http(url, OPS) as ops:
        stale_view = {"decision": "approve", "args_hash": "0" * 64}
        stale = ops.post(f"/keel/approvals/{approval_id}", json=stale_view)
        assert stale.status_code == 409 and "other arguments" in stale.json()["detail"]
        pending = [a["approval_id"] for a in ops.get("/keel/approvals").json()["approvals"]]
        assert approval_id in pending  # still waiting: nothing was recorded
        shown = {"decision": "approve", "args_hash": request["args_hash"]}
        r = ops.post(f"/keel/approvals/{approval_id}", json=shown)
        assert r.status_code == 202, r.text
    client = get_client(url=url, api_key=ALICE)
    await client.runs.join(thread, r.json()["run_id"])
    assert (await client.threads.get_state(thread))["values"]["status"] == "succeeded"
    audit = await _audit(home, thread)
    assert [(r.event, r.approver) for r in audit if r.event.startswith("approval_")] == [
        ("approval_refused", "ops"),
        ("approval_decision", "ops"),
    ]


async def test_a_user_cannot_read_or_run_on_another_users_thread(server: tuple[str, Path]) -> None:
    url, _ = server
    alice, bob = get_client(url=url, api_key=ALICE), get_client(url=url, api_key=BOB)
    thread = (await alice.threads.create())["thread_id"]
    with pytest.raises(NotFoundError):
        await bob.threads.get(thread)
    with pytest.raises(NotFoundError):
        await bob.threads.get_state(thread)
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await bob.runs.wait(thread, "keel", input={"messages": [{"role": "human", "content": "list ~/"}]})
    assert refused.value.response.status_code in (403, 404)
    assert thread not in [t["thread_id"] for t in await bob.threads.search(limit=100)]
    ops = get_client(url=url, api_key=OPS)
    assert thread in [t["thread_id"] for t in await ops.threads.search(limit=100)]


async def test_the_run_identity_comes_from_the_key_not_the_client(server: tuple[str, Path]) -> None:
    url, _ = server
    alice = get_client(url=url, api_key=ALICE)
    thread = (await alice.threads.create())["thread_id"]
    payload = {"messages": [{"role": "human", "content": "list ~/"}]}
    with pytest.raises((PermissionDeniedError, httpx.HTTPStatusError)) as refused:
        await alice.runs.wait(thread, "keel", input=payload, context={"user_id": "bob", "role": "admin"})
    assert "identity" in str(getattr(refused.value, "response", refused.value).text)
    await alice.runs.wait(thread, "keel", input=payload, context={"user_id": "alice"})
    with _http(url, OPS) as ops:
        rows = ops.get("/keel/approvals", params={"status": "all"}).json()["approvals"]
    assert all(r["requester"] in ("alice", "bob", "ops") for r in rows)


async def test_the_run_version_is_the_servers_not_the_clients(server: tuple[str, Path]) -> None:
    """A client naming a version in its context runs as the server's own agent version all the same."""
    url, home = server
    alice = get_client(url=url, api_key=ALICE)
    thread = (await alice.threads.create())["thread_id"]
    payload = {"messages": [{"role": "human", "content": "list ~/"}]}
    context = {"user_id": "alice", "version": "client-made"}
    await alice.runs.wait(thread, "keel", input=payload, context=context)
    records = Records.from_url(Settings(home=home).records_url)
    try:
        execution = await records.latest_execution(thread)
        stored = {u.version_id for u in await records.version_usage() if u.recorded}
    finally:
        await records.close()
    assert execution is not None and execution.version.startswith("keel-v1@") and execution.version in stored


async def test_a_requester_cannot_approve_their_own_call_via_the_raw_api(server: tuple[str, Path]) -> None:
    url, home = server
    thread, request = await _pause_for_approval(url, "delete ~/nothing-here.md")
    alice = get_client(url=url, api_key=ALICE)
    resume = {"decision": "approve", "approver": "alice"}
    with pytest.raises((PermissionDeniedError, httpx.HTTPStatusError)) as refused:  # not a failed run
        await alice.runs.wait(thread, "keel", command={"resume": resume})
    assert refused.value.response.status_code == 403
    assert "may not decide approvals" in refused.value.response.text
    state = await alice.threads.get_state(thread)
    assert state["next"] == ["approval"]  # still waiting
    assert (await alice.threads.get(thread))["status"] == "interrupted"  # not flipped to error
    with _http(url, ALICE) as h:
        rows = h.get("/keel/approvals").json()["approvals"]
    assert [r["status"] for r in rows if r["approval_id"] == request["approval_id"]] == ["pending"]
    audit = await _audit(home, thread)
    assert [(r.event, r.approver, r.decision) for r in audit if r.event.startswith("approval_")] == [
        ("approval_refused", "alice", "approve")
    ]


async def _audit(home: Path, thread: str) -> list:
    records = Records.from_url(Settings(home=home).records_url)
    try:
        return await records.audit_for(thread_id=thread)
    finally:
        await records.close()


async def test_a_decision_whose_resume_was_lost_is_carried_out_when_touched_again(
    server: tuple[str, Path],
) -> None:
    url, home = server
    draft = home / "workspace" / "home" / "alice" / "lost-resume.md"
    draft.write_text("old\n")
    thread, request = await _pause_for_approval(url, "read shared/handbook.md then delete ~/lost-resume.md")
    records = Records.from_url(Settings(home=home).records_url)
    try:  # the approving replica died right after its UPDATE: recorded, never resumed
        won = await records.decide_approval(request["approval_id"], status="approved", decided_by="ops")
    finally:
        await records.close()
    assert won and draft.exists()
    with _http(url, OPS) as ops:
        again = ops.post(f"/keel/approvals/{request['approval_id']}", json={"decision": "approve"})
    assert again.status_code == 409 and "queued now" in again.text, again.text
    run_id = again.json()["detail"].rsplit("run ", 1)[1].rstrip(")")
    alice = get_client(url=url, api_key=ALICE)
    await alice.runs.join(thread, run_id)
    state = await alice.threads.get_state(thread)
    assert state["next"] == [] and state["values"]["status"] == "succeeded"
    assert not draft.exists()


async def test_approving_a_request_whose_thread_was_deleted_is_a_404_and_records_nothing(
    server: tuple[str, Path],
) -> None:
    url, _ = server
    thread, request = await _pause_for_approval(url, "delete ~/nothing-here-either.md")
    await get_client(url=url, api_key=ALICE).threads.delete(thread)
    with _http(url, OPS) as ops:
        r = ops.post(f"/keel/approvals/{request['approval_id']}", json={"decision": "approve"})
        assert r.status_code == 404 and "no longer waits" in r.text, r.text
        rows = ops.get("/keel/approvals", params={"status": "all"}).json()["approvals"]
    assert [a["status"] for a in rows if a["approval_id"] == request["approval_id"]] == ["pending"]


def test_health_and_metrics_answer(server: tuple[str, Path]) -> None:
    url, _ = server
    with _http(url, OPS) as ops:
        health = ops.get("/keel/health", params={"window_s": 600})
        assert health.status_code == 200 and "status" in health.json()
        metrics = ops.get("/keel/metrics")
        assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
        spec = ops.get("/keel/openapi.json").json()
        assert "/keel/approvals/{approval_id}" in spec["paths"]


async def test_studio_sees_named_nodes_and_described_schemas(server: tuple[str, Path]) -> None:
    url, _ = server
    client = get_client(url=url, api_key=ALICE)
    graph = await client.assistants.get_graph("keel")
    nodes = {n["id"] for n in graph["nodes"]}
    expected = {"recall", "plan", "decide", "permission_check", "approval", "tool", "fallback", "finalize"}
    assert expected <= nodes
    assistant = (await client.assistants.search(graph_id="keel"))[0]["assistant_id"]
    schemas = await client.assistants.get_schemas(assistant)
    inp, ctx, out = schemas["input_schema"], schemas["context_schema"], schemas["output_schema"]
    assert inp["description"] and inp["properties"]["messages"]["description"]
    assert ctx["required"] == ["user_id"] and all(p["description"] for p in ctx["properties"].values())
    assert out["properties"]["terminated_reason"]["description"].startswith("Why the run stopped")
    assert {"messages", "pending", "status", "answer"} <= set(schemas["state_schema"]["properties"])


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/keel/approvals/00000000-0000-0000-0000-000000000000", b"{not json", 400),
        ("POST", "/keel/approvals/00000000-0000-0000-0000-000000000000", b"[1, 2]", 422),
        ("POST", "/keel/approvals/00000000-0000-0000-0000-000000000000", b'{"decision": "maybe"}', 404),
        ("POST", "/keel/approvals/..%2F..", b'{"decision": "approve"}', 404),
        ("POST", "/keel/feedback", b'{"execution_id": "x", "score": 7}', 422),
        ("POST", "/keel/feedback", b'{"execution_id": "x", "score": 1, "extra": 1}', 422),
        ("POST", "/keel/feedback", b'{"execution_id": "no-such-run", "score": 1}', 404),
        ("GET", "/keel/approvals?status=bogus", None, 422),
        ("GET", "/keel/approvals?limit=-3", None, 422),
        ("GET", "/keel/health?window_s=abc", None, 422),
        ("PUT", "/keel/budgets/alice", b'{"monthly_usd": "lots"}', 422),
        ("PUT", "/keel/budgets/alice", b'{"monthly_usd": -1}', 422),
    ],
)
def test_malformed_input_is_a_clear_4xx(
    server: tuple[str, Path], method: str, path: str, body: bytes | None, status: int
) -> None:
    url, _ = server
    with _http(url, OPS) as ops:
        r = ops.request(method, path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert r.json()["detail"]


def test_budgets_are_admin_only(server: tuple[str, Path]) -> None:
    url, _ = server
    with _http(url, ALICE) as alice, _http(url, OPS) as ops:
        assert alice.put("/keel/budgets/alice", json={"monthly_usd": 100}).status_code == 403
        assert alice.get("/keel/budgets/bob").status_code == 403
        r = ops.put("/keel/budgets/alice", json={"monthly_usd": 25})
        assert r.status_code in (200, 503), r.text
        if r.status_code == 200:
            assert r.json()["limit"].startswith("25") and alice.get("/keel/budgets/alice").status_code == 200
