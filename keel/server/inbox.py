"""The approvals inbox on LangGraph Server: list what a caller may see, record a decision, resume the thread.

The decision is recorded first (a conditional UPDATE: one decision wins, even across replicas), then the
thread is resumed through the server's own API (`langgraph_sdk.get_client()` without a URL: the in-process
transport). That queues a run in the server's run queue like any client's: whichever replica's worker picks
it up runs it under the thread's lock, with the server's checkpointer, and clients streaming the thread see
it. Running the graph inside the route instead would bypass the queue and the thread lock, and on several
replicas two processes could run one thread at once. On Aegra (no in-process SDK transport, no run queue)
keel.server.aegra installs its own `ServerApi`, which creates the run through Aegra's run endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from keel.approvals import check_approver, parse_decision, record_decision, recorded_resume, refuse
from keel.errors import Conflict, NotFound
from keel.identity import Principal
from keel.policies import ADMIN_ROLE
from keel.policies.matrix import PolicyMatrix
from keel.records import Approval, Records

__all__ = ["visible_approvals", "decide", "Resumed", "ServerApi", "LangGraphServerApi", "use_server"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Resumed:
    """A recorded decision and the server run that resumes its thread."""

    approval: Approval
    run_id: str
    thread_id: str


def _sees(policy: PolicyMatrix, who: Principal, row: Approval) -> bool:
    if who.role == ADMIN_ROLE:
        return True
    if policy.is_approver(who.role):
        return row.tenant == who.tenant
    return row.requester == who.user_id


async def visible_approvals(
    records: Records, policy: PolicyMatrix, who: Principal, *, status: str | None, limit: int
) -> list[Approval]:
    """The caller's own approvals, or every approval of the tenant (all, for admins) for approver roles."""
    approver = policy.is_approver(who.role)
    rows = await records.list_approvals(
        status=status, requester=None if approver else who.user_id, limit=limit
    )
    return [r for r in rows if _sees(policy, who, r)]


async def decide(
    records: Records, policy: PolicyMatrix, who: Principal, approval_id: str, body: dict[str, Any]
) -> Resumed:
    """Record `who`'s decision on an approval (checked against `policy`, the matrix in force) and queue the
    run that resumes its thread.

    A request already decided whose thread still waits for it (the resume was lost: a crash right after
    the UPDATE) has its run queued now with the recorded decision, and the caller gets a 409 saying so.
    A request whose thread is gone or has moved on is a 404, and nothing is recorded.
    """
    row = await records.get_approval(approval_id)
    if row is None:
        raise NotFound(f"no approval request {approval_id}")
    if not _sees(policy, who, row):
        # Audited, but answered like a missing request: another tenant learns nothing about it.
        await refuse(
            records,
            row,
            approver=who.user_id,
            decision=body.get("decision"),
            why=f"{who.user_id!r} (role {who.role!r}, tenant {who.tenant!r}) may not see this request",
        )
        raise NotFound(f"no approval request {approval_id}")
    # The approver is the authenticated user; the args hash is the one the client was shown, if it sends it.
    shown = body.get("args_hash") or row.args_hash
    choice = parse_decision({**body, "approver": who.user_id, "args_hash": shown})
    await check_approver(records, policy, row, choice, who.role)
    stuck = await _waits_without_run(row)
    if row.status != "pending":
        detail = f"approval {approval_id} was already {row.status} by {row.decided_by}"
        if stuck:
            run_id = await _resume(records, row, recorded_resume(row))
            detail += f"; its run had not gone on and is queued now (run {run_id})"
        raise Conflict(detail)
    if not stuck:
        raise NotFound(f"approval {approval_id}: its thread {row.thread_id} no longer waits for it")
    await record_decision(records, policy, row, choice, who.role)
    run_id = await _resume(records, row, choice.as_resume())
    return Resumed(
        approval=await records.get_approval(approval_id) or row, run_id=run_id, thread_id=row.thread_id
    )


class ServerApi(Protocol):
    """What the inbox asks of the server it runs on (LangGraph Server, or Aegra: keel.server.aegra)."""

    async def waiting_on(self, thread_id: str) -> set[str] | None:
        """The approval ids the thread's interrupts wait on; None when there is no such thread."""
        ...

    async def busy(self, thread_id: str) -> bool:
        """True when a run is queued or running on the thread."""
        ...

    async def resume(self, thread_id: str, resume: dict[str, Any], context: dict[str, Any]) -> str:
        """Queue a run that resumes the thread with `resume`, as `context` (keel's own, authorised call)."""
        ...


class LangGraphServerApi:
    """LangGraph Server's own API through `langgraph_sdk.get_client()` without a URL (in-process)."""

    async def waiting_on(self, thread_id: str) -> set[str] | None:
        from langgraph_sdk import get_client
        from langgraph_sdk.errors import NotFoundError

        try:
            thread = await get_client().threads.get(thread_id)
        except NotFoundError:
            return None
        return {
            (i.get("value") or {}).get("approval_id")
            for interrupts in (thread.get("interrupts") or {}).values()
            for i in interrupts
            if isinstance(i.get("value"), dict)
        }

    async def busy(self, thread_id: str) -> bool:
        from langgraph_sdk import get_client

        client = get_client()
        for status in ("pending", "running"):
            if await client.runs.list(thread_id, status=status, limit=1):
                return True
        return False

    async def resume(self, thread_id: str, resume: dict[str, Any], context: dict[str, Any]) -> str:
        from langgraph_sdk import get_client

        client = get_client()  # in-process: keel's own call, authorised by the caller
        thread = await client.threads.get(thread_id)
        assistant = (thread.get("metadata") or {}).get("assistant_id") or "keel"
        run = await client.runs.create(
            thread_id, assistant, command={"resume": resume}, context=context, multitask_strategy="enqueue"
        )
        return str(run["run_id"])


_server: list[ServerApi] = [LangGraphServerApi()]


def use_server(api: ServerApi) -> None:
    """Resume through `api` from now on (keel.server.aegra installs Aegra's when Aegra loads keel's app)."""
    _server[0] = api


async def _waits_without_run(row: Approval) -> bool:
    """True when the row's thread is paused on this request and no run is queued or running on it."""
    api = _server[0]
    waiting = await api.waiting_on(row.thread_id)
    if waiting is None or row.approval_id not in waiting:
        return False
    return not await api.busy(row.thread_id)


async def _resume(records: Records, row: Approval, resume: dict[str, Any]) -> str:
    """Queue the resume through the server's API, as the requester's execution (identity from the record)."""
    execution = await records.get_execution(row.execution_id)
    if execution is None:
        raise NotFound(f"no execution {row.execution_id} for approval {row.approval_id}")
    context = {
        "user_id": execution.user_id,
        "role": execution.role,
        "tenant": execution.tenant,
        "execution_id": execution.execution_id,
        "version": execution.version,
    }
    return await _server[0].resume(row.thread_id, resume, context)
