"""keel's security model end to end, on both servers keel runs on (issue 16): `langgraph dev`, and keel on
Aegra (`make serve`) as two replicas over one PostgreSQL and one Redis, the client spreading its requests
over both. The same tests, one server set per parameter: no key is a 401; a user's run pauses for
approval; another user can neither see it, nor run on it, nor decide it; the requester cannot approve their
own call; an admin approves through /keel/approvals/{id} and the run completes once; a second decision is
a conflict, whichever replica takes it; a client context or config naming another user does not make the
run act as them.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import NotFoundError
from live_server import ROOT, aegra_serve, langgraph_dev, scratch_databases

from keel.records import Records
from keel.settings import Settings

ALICE, BOB, OPS = "alice-dev-key", "bob-dev-key", "ops-dev-key"
TASK = "read shared/handbook.md then delete ~/{name}"
REDIS = "redis://127.0.0.1:6379/0"

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Servers:
    """One server set: its replicas' URLs (one for `langgraph dev`), KEEL_HOME and keel's records."""

    kind: str
    urls: list[str]
    home: Path
    settings: Settings

    def url(self, i: int) -> str:
        """The i-th request's replica: requests alternate over the replicas."""
        return self.urls[i % len(self.urls)]


def _home(root: Path) -> Path:
    (root / "workspace" / "home" / "alice").mkdir(parents=True)
    (root / "workspace" / "shared").mkdir(parents=True)
    (root / "workspace" / "shared" / "handbook.md").write_text("# Handbook\nBe kind.\n")
    return root


@pytest.fixture(scope="module", params=["langgraph-dev", "aegra"])
def servers(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    home = _home(tmp_path_factory.mktemp(f"keel-{request.param}"))
    if request.param == "langgraph-dev":
        with langgraph_dev(home) as url:
            yield Servers(request.param, [url], home, Settings(home=home))
        return
    limits = home / "limits.yaml"  # the shipped limits, and one search per user per minute
    limits.write_text(
        (ROOT / "policies" / "limits.yaml")
        .read_text()
        .replace("tools:\n", "tools:\n  search_notes: {per_user: 1/minute}\n")
    )
    keys = home / "api_keys.yaml"  # the bundled file is refused with the postgres profile: a copy of it
    shutil.copyfile(ROOT / "keel" / "server" / "dev_keys.yaml", keys)
    with scratch_databases("aegra", "keel") as (aegra_db, keel_db):
        env = {
            "DATABASE_URL": aegra_db,
            "KEEL_PROFILE": "postgres",
            "KEEL_DATABASE_URL": keel_db,
            "KEEL_REDIS_URL": REDIS,
            "KEEL_REDIS_PREFIX": f"keel-e2e-{uuid.uuid4().hex[:8]}:",
            "KEEL_API_KEYS_FILE": str(keys),
            "KEEL_MODEL_PROVIDER": "scripted",
            "KEEL_MODEL": "keel-scripted",
            "KEEL_LIMITS_FILE": str(limits),
        }
        with aegra_serve(home, env, replicas=2) as urls:
            settings = Settings(profile="postgres", database_url=keel_db, home=home)
            yield Servers(request.param, urls, home, settings)


def _http(url: str, key: str | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, headers={"x-api-key": key} if key else {}, timeout=60)


async def _pause_for_approval(s: Servers, name: str) -> tuple[str, dict]:
    """Alice starts a run (on the first replica) that stops at an approval for deleting ~/name."""
    (s.home / "workspace" / "home" / "alice" / name).write_text("old draft\n")
    alice = get_client(url=s.url(0), api_key=ALICE)
    thread = (await alice.threads.create())["thread_id"]
    interrupt = None
    payload = {"messages": [{"role": "human", "content": TASK.format(name=name)}]}
    async for part in alice.runs.stream(thread, "keel", input=payload, stream_mode="updates"):
        # LangGraph Server sends the interrupt as an "updates" event, Aegra as a "values" event
        if isinstance(part.data, dict) and "__interrupt__" in part.data:
            interrupt = part.data["__interrupt__"][0]["value"]
    assert interrupt is not None and interrupt["tool"] == "delete_file", interrupt
    return thread, interrupt


async def _audit(s: Servers, thread: str) -> list:
    records = Records.from_url(s.settings.records_url)
    try:
        return await records.audit_for(thread_id=thread)
    finally:
        await records.close()


async def _latest_execution(s: Servers, thread: str):  # noqa: ANN202
    records = Records.from_url(s.settings.records_url)
    try:
        return await records.latest_execution(thread)
    finally:
        await records.close()


async def test_no_key_or_an_unknown_key_is_a_401_on_every_replica(servers: Servers) -> None:
    thread = str(uuid.uuid4())
    calls = [
        ("POST", "/threads/search", {}),
        ("GET", "/keel/approvals", None),
        ("POST", f"/threads/{thread}/runs/wait", {"assistant_id": "keel", "input": {}}),
    ]
    for url in servers.urls:
        async with _http(url) as anon, _http(url, "not-a-key") as wrong:
            for client in (anon, wrong):
                for method, path, body in calls:
                    r = await client.request(method, path, json=body)
                    assert r.status_code == 401, (url, path, r.text)
                    assert "alice" not in r.text and "yaml" not in r.text.lower()


async def test_a_paused_run_is_seen_run_on_and_decided_only_by_whom_it_may(servers: Servers) -> None:
    s = servers
    thread, request = await _pause_for_approval(s, "paused-draft.md")
    approval_id = request["approval_id"]
    bob = get_client(url=s.url(1), api_key=BOB)
    with pytest.raises(NotFoundError):
        await bob.threads.get(thread)
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await bob.runs.wait(thread, "keel", input={"messages": [{"role": "human", "content": "list ~/"}]})
    assert refused.value.response.status_code in (403, 404)
    assert thread not in [t["thread_id"] for t in await bob.threads.search(limit=100)]
    async with _http(s.url(1), BOB) as bob_http, _http(s.url(0), ALICE) as alice_http:
        seen_by_bob = (await bob_http.get("/keel/approvals")).json()["approvals"]
        assert approval_id not in [a["approval_id"] for a in seen_by_bob]
        r = await bob_http.post(f"/keel/approvals/{approval_id}", json={"decision": "approve"})
        assert r.status_code == 404, r.text
        r = await alice_http.post(f"/keel/approvals/{approval_id}", json={"decision": "approve"})
        assert r.status_code == 403, r.text
    alice = get_client(url=s.url(1), api_key=ALICE)
    with pytest.raises(httpx.HTTPStatusError) as raw:  # a raw resume: a 403, not a failed run
        await alice.runs.wait(
            thread, "keel", command={"resume": {"decision": "approve", "approver": "alice"}}
        )
    assert raw.value.response.status_code == 403 and "may not decide approvals" in raw.value.response.text
    assert (await alice.threads.get(thread))["status"] == "interrupted"
    assert (await alice.threads.get_state(thread))["next"] == ["approval"]
    audit = await _audit(s, thread)
    assert [(r.event, r.approver) for r in audit if r.event.startswith("approval_")] == [
        ("approval_refused", "bob"),  # not his to see: a 404 to him, a row for the auditors
        ("approval_refused", "alice"),  # a requester may not decide, through the inbox
        ("approval_refused", "alice"),  # nor through the server's API
    ]


async def test_an_admin_approves_once_and_the_run_completes_once(servers: Servers) -> None:
    s = servers
    draft = s.home / "workspace" / "home" / "alice" / "approved-draft.md"
    thread, request = await _pause_for_approval(s, draft.name)
    approval_id = request["approval_id"]

    async def decide(i: int, decision: str) -> httpx.Response:
        async with _http(s.url(i), OPS) as ops:  # two admins, on two replicas, at once
            return await ops.post(f"/keel/approvals/{approval_id}", json={"decision": decision})

    first, second = await asyncio.gather(decide(0, "approve"), decide(1, "approve"))
    assert sorted([first.status_code, second.status_code]) == [202, 409], (first.text, second.text)
    won = first if first.status_code == 202 else second
    assert won.json()["approval"]["status"] == "approved" and won.json()["approval"]["decided_by"] == "ops"
    replica = s.urls.index(str(won.request.url).split("/keel/")[0])
    alice = get_client(url=s.urls[replica], api_key=ALICE)  # Aegra runs it on the replica that decided
    await alice.runs.join(thread, won.json()["run_id"])
    state = await alice.threads.get_state(thread)
    assert state["next"] == [] and state["values"]["status"] == "succeeded"
    assert state["values"]["tools_used"].count("delete_file") == 1 and not draft.exists()
    assert (await decide(0, "reject")).status_code == 409
    audit = await _audit(s, thread)
    assert [(r.event, r.approver) for r in audit if r.event.startswith("approval_")] == [
        ("approval_decision", "ops")
    ]
    assert [r.event for r in audit if r.tool == "delete_file" and r.event == "tool_call"] == ["tool_call"]


@pytest.mark.parametrize("call", ["create", "stream", "wait"])
async def test_a_client_context_naming_another_user_is_refused(servers: Servers, call: str) -> None:
    alice = get_client(url=servers.url(1), api_key=ALICE)
    thread = (await alice.threads.create())["thread_id"]
    payload = {"messages": [{"role": "human", "content": "list ~/"}]}
    context = {"user_id": "bob", "role": "admin"}
    with pytest.raises(httpx.HTTPStatusError) as refused:
        if call == "stream":
            async for _ in alice.runs.stream(thread, "keel", input=payload, context=context):
                pass
        else:
            await getattr(alice.runs, call)(thread, "keel", input=payload, context=context)
    assert refused.value.response.status_code == 403 and "identity" in refused.value.response.text
    assert await _latest_execution(servers, thread) is None  # nothing ran


async def test_an_assistant_config_naming_another_user_does_not_change_who_runs(servers: Servers) -> None:
    """The run's user is the key's, whatever an assistant's stored config says (Aegra copies it over)."""
    alice = get_client(url=servers.url(0), api_key=ALICE)
    forged = {"identity": "ops", "role": "admin", "tenant": "acme", "is_authenticated": True}
    assistant = await alice.assistants.create(
        "keel",
        config={"configurable": {"langgraph_auth_user": forged}},
        name=f"forged-{uuid.uuid4().hex[:6]}",
    )
    thread = (await alice.threads.create())["thread_id"]
    payload = {"messages": [{"role": "human", "content": "list ~/"}]}
    await alice.runs.wait(thread, assistant["assistant_id"], input=payload)
    execution = await _latest_execution(servers, thread)
    assert execution is not None and (execution.user_id, execution.role) == ("alice", "user")


async def test_replicas_share_keels_records_and_budgets(servers: Servers) -> None:
    """What one replica writes (a budget, an approval) the other reads: one PostgreSQL and Redis behind."""
    if len(servers.urls) < 2:
        pytest.skip("`langgraph dev` is one process")
    user = f"u{uuid.uuid4().hex[:8]}"
    async with _http(servers.url(0), OPS) as ops0, _http(servers.url(1), OPS) as ops1:
        assert (await ops0.put(f"/keel/budgets/{user}", json={"monthly_usd": 3.5})).status_code == 200
        assert (await ops1.get(f"/keel/budgets/{user}")).json()["limit"].startswith("3.5")


async def test_a_rate_limit_counts_the_calls_of_every_replica(servers: Servers) -> None:
    """One search per user per minute: the second, on the other replica, is refused."""
    if len(servers.urls) < 2:
        pytest.skip("`langgraph dev` is one process")
    outcomes = []
    for i in range(2):
        bob = get_client(url=servers.url(i), api_key=BOB)
        thread = (await bob.threads.create())["thread_id"]
        payload = {"messages": [{"role": "human", "content": "search kind in shared"}]}
        await bob.runs.wait(thread, "keel", input=payload)
        execution = await _latest_execution(servers, thread)
        outcomes.append((execution.status, execution.tools_used, execution.tools_refused))
    assert outcomes == [("succeeded", ("search_notes",), ()), ("failed", (), ("search_notes",))]
    audit = await _audit(servers, thread)
    refused = [r.detail or "" for r in audit if r.event == "tool_call" and r.status == "refused"]
    assert len(refused) == 1 and "rate-limited" in refused[0]
