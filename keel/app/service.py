"""keel as a library: run, resume, approve and give feedback, over one set of backends (the CLI and demo
use this)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from keel.app.backends import Backends, open_checkpointer
from keel.approvals import ApprovalDecision, check_approver, record_decision, recorded_resume
from keel.config import KeelConfig
from keel.context import InvalidContext, RunContext, check_task_size
from keel.errors import CHECKPOINT_STORE_ERRORS, Conflict, Forbidden, NotFound, StoreUnavailable, describe
from keel.feedback import give_feedback
from keel.graphs.agent import build_graph
from keel.guards import Guard, NextCall
from keel.policies import ADMIN_ROLE
from keel.prompts import continue_message, original_request
from keel.records import Approval, Feedback, Records, idle_ping
from keel.rollout.router import ArmStatus, Rollout
from keel.settings import Settings
from keel.tools.registry import ToolRegistry

__all__ = ["Keel", "RunOutcome", "StepCallback", "TokenCallback"]

StepCallback = Callable[[str, dict[str, Any]], None]
"""(node, update): a node finished its step."""
TokenCallback = Callable[[str, str], None]
"""(node, text): a piece of the model's reply, as it arrives (the whole reply at once from a model that
does not stream)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOutcome:
    """How a run request ended: finished, terminated early, or paused for approval."""

    thread_id: str
    execution_id: str
    status: str
    """succeeded | terminated | awaiting_approval"""
    answer: str = ""
    terminated_reason: str | None = None
    approval: dict[str, Any] | None = None
    """The pending approval request when status is awaiting_approval."""
    path: list[str] = field(default_factory=list)
    """Nodes this request went through, in order."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "thread_id": self.thread_id,
            "execution_id": self.execution_id,
            "status": self.status,
            "answer": self.answer,
            "terminated_reason": self.terminated_reason,
            "approval": self.approval,
            "path": self.path,
        }


class Keel:
    """One process's entry point to keel: `async with Keel.open() as keel: await keel.run(...)`."""

    durability: str = "sync"
    """LangGraph durability of every run: `sync` writes a step's checkpoint before the next step starts, so
    a process killed anywhere resumes from the step it was in and never re-runs one whose effect committed.
    (`async`, LangGraph's default, loses the last step on kill -9; the benchmark measures the difference.)"""

    def __init__(
        self,
        backends: Backends,
        graph: CompiledStateGraph,
        arm_graphs: dict[str, CompiledStateGraph] | None = None,
    ) -> None:
        self.backends = backends
        self.graph = graph
        """The graph of this keel's own config (with a rollout: the stable arm's runs use theirs)."""
        self.arm_graphs = arm_graphs or {}
        """With a rollout: each arm's graph by arm name (they share one checkpointer)."""
        self.swept: list[str] = []
        """Executions the stale-run sweep marked `interrupted` when this keel opened."""

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        settings: Settings | None = None,
        *,
        model: BaseChatModel | None = None,
        model_name: str | None = None,
        registry: ToolRegistry | None = None,
        guards: Sequence[Guard[NextCall]] = (),
        config: KeelConfig | None = None,
    ) -> AsyncIterator[Keel]:
        """Build the backends, migrate, open the checkpointer; close all on exit. `guards`: the
        application's own, checked before every model call after keel's (keel.guards.Guard). `config`: the
        project's keel.yaml (keel.config)."""
        backends = Backends.from_settings(
            settings, model=model, model_name=model_name, registry=registry, guards=guards, config=config
        )
        try:
            await backends.ready()
            # Runs whose process died (lease expired) are marked interrupted, so `resume` can continue them.
            swept = await backends.records.sweep_stale(backends.settings.run_lease_s)
            async with open_checkpointer(backends.settings) as saver:
                graph = build_graph(backends, checkpointer=saver)
                arm_graphs = {
                    name: graph if b is backends else build_graph(b, checkpointer=saver)
                    for name, b in backends.arms.items()
                }
                keel = cls(backends, graph, arm_graphs)
                keel.swept = swept
                yield keel
        finally:
            await backends.aclose()

    @property
    def records(self) -> Records:
        return self.backends.records

    def _context(
        self,
        user_id: str,
        role: str,
        tenant: str,
        execution_id: str | None = None,
        *,
        b: Backends | None = None,
    ) -> RunContext:
        """The run's context as `b` (default: this keel's own config) runs it: its roles, its version."""
        b = b or self.backends
        roles = b.policy.current().roles
        if role not in roles:
            raise InvalidContext(f"unknown role {role!r} (known: {', '.join(sorted(roles))})")
        return RunContext(
            user_id=user_id,
            role=role,
            tenant=tenant,
            execution_id=execution_id or str(uuid.uuid4()),
            version=b.version.id,
        )

    async def _arm_for(self, user_id: str) -> Backends:
        """The backends a new run of `user_id` runs on: their rollout arm's (without a rollout: these)."""
        if self.backends.rollout is None:
            return self.backends
        return self.backends.arms[await self.backends.rollout.choose(user_id)]

    def _arm_of(self, version: str) -> Backends:
        """The backends an execution recorded as `version` goes on with: its arm's while the rollout has it
        (a stopped arm's too: a run finishes as the version it started as), else these."""
        for b in self.backends.arms.values():
            if b.version.id == version:
                return b
        return self.backends

    def _graph(self, b: Backends) -> CompiledStateGraph:
        return self.arm_graphs.get(b.arm, self.graph) if b.arm is not None else self.graph

    async def run(
        self,
        task: str,
        *,
        user_id: str,
        role: str = "user",
        tenant: str = "default",
        thread_id: str | None = None,
        on_step: StepCallback | None = None,
        on_token: TokenCallback | None = None,
    ) -> RunOutcome:
        """Start a run on a new or existing thread. `on_step` hears of each node's step, `on_token` of the
        model's reply as it streams (only then is the model asked to stream)."""
        if not task.strip():
            raise InvalidContext("the task is empty")
        check_task_size(task, self.backends.settings.max_task_chars)  # refused whole, never cut
        b = await self._arm_for(user_id)
        ctx = self._context(user_id, role, tenant, b=b)
        thread_id = thread_id or str(uuid.uuid4())
        if (prior := await self.records.latest_execution(thread_id)) is not None:
            if prior.user_id != user_id:
                raise Forbidden(f"thread {thread_id} belongs to another user")
            if prior.status == "awaiting_approval":
                raise Conflict(f"thread {thread_id} is waiting for an approval; decide it first")
        return await self._drive(
            {"messages": [HumanMessage(task)]}, thread_id, ctx, on_step, on_token, first=True, b=b
        )

    async def resume(
        self,
        thread_id: str,
        *,
        on_step: StepCallback | None = None,
        on_token: TokenCallback | None = None,
    ) -> RunOutcome:
        """Continue a thread: after a crash from its last checkpoint; after an early stop with a new turn."""
        prior = await self.records.latest_execution(thread_id)
        if prior is None:
            raise NotFound(f"no run on thread {thread_id}")
        async with _checkpoint_store(thread_id):
            snapshot = await self.graph.aget_state(self._config(thread_id))
        b = self._arm_of(prior.version)
        ctx = self._context(prior.user_id, prior.role, prior.tenant, prior.execution_id, b=b)
        if (approval_id := _waiting_on(snapshot)) is not None:
            row = await self.records.get_approval(approval_id)
            if row is None or row.status == "pending":
                raise Conflict(f"thread {thread_id} is waiting for an approval; decide it to resume")
            # Decided, but the resume never ran (the deciding process died): carry the decision out now.
            return await self._drive(
                Command(resume=recorded_resume(row)), thread_id, ctx, on_step, on_token, b=b
            )
        if snapshot.next or snapshot.tasks:
            # The process that ran this step died: what it had reserved was never settled. (`tasks`
            # without `next`: the step's writes were saved but its checkpoint was not, e.g. the checkpoint
            # database failed right after; LangGraph applies those writes and goes on from there.)
            if prior.status == "interrupted":  # found by the stale-run sweep: running again, lease renewed
                await self.records.update_execution(prior.execution_id, status="running", error=None)
                await self.records.heartbeat(prior.execution_id)
            await b.guards.release_open(prior.execution_id, "released on resume after a crash")
            return await self._drive(None, thread_id, ctx, on_step, on_token, b=b)
        if prior.status == "terminated":  # a new execution: in the user's arm now
            b = await self._arm_for(prior.user_id)
            ctx = self._context(prior.user_id, prior.role, prior.tenant, b=b)
            _, task = original_request(snapshot.values.get("messages", []))
            return await self._drive(
                {"messages": [continue_message(task)]}, thread_id, ctx, on_step, on_token, first=True, b=b
            )
        raise Conflict(f"thread {thread_id} finished ({prior.status}); start a new run on it instead")

    async def feedback(
        self,
        execution_id: str,
        score: float,
        comment: str | None = None,
        *,
        user_id: str,
        role: str,
    ) -> Feedback:
        """`user_id`'s score in [-1, 1] (and comment) on one of their executions (an admin: any), as
        `POST /keel/feedback` takes it (`keel.feedback.give_feedback`): NotFound for another user's
        execution, ValueError naming the rule for a score out of range; giving it again replaces it."""
        return await give_feedback(
            self.records,
            execution_id=execution_id,
            score=score,
            comment=comment,
            user_id=user_id,
            role=role,
            langsmith=self.backends.telemetry.langsmith,
        )

    def _rollout(self) -> Rollout:
        if self.backends.rollout is None:
            raise NotFound(
                "no rollout in force: write rollout.yaml beside keel.yaml or set KEEL_ROLLOUT_FILE "
                "(docs/operations.md)"
            )
        return self.backends.rollout

    async def rollout_status(self) -> list[ArmStatus]:
        """Every arm of the rollout in force: version, weights, share, stop, guard-rail window."""
        return await self._rollout().status()

    async def rollout_set(
        self, arm: str, weight: float, *, by: str, role: str = ADMIN_ROLE
    ) -> list[ArmStatus]:
        """Set an arm's weight for every process (audited); the rollout's status after it."""
        await self._rollout().set_weight(arm, weight, by=by, role=role)
        return await self.rollout_status()

    async def rollout_stop(
        self, arm: str, *, by: str, role: str = ADMIN_ROLE, reason: str = "stopped by an operator"
    ) -> list[ArmStatus]:
        """Stop an arm (its users' new runs start in the stable arm; audited). Conflict when it is stopped
        already or is the stable arm."""
        if not await self._rollout().stop(arm, by=by, role=role, reason=reason):
            raise Conflict(f"arm {arm!r} is stopped already")
        return await self.rollout_status()

    async def rollout_resume(self, arm: str, *, by: str, role: str = ADMIN_ROLE) -> list[ArmStatus]:
        """Resume a stopped arm (its users return to it by weight; audited). Conflict when it runs."""
        if not await self._rollout().resume(arm, by=by, role=role):
            raise Conflict(f"arm {arm!r} is not stopped")
        return await self.rollout_status()

    async def pending_approvals(self, *, requester: str | None = None) -> list[Approval]:
        """Approval requests still waiting, oldest first."""
        return await self.records.list_approvals(status="pending", requester=requester)

    async def decide(
        self,
        approval_id: str,
        decision: str,
        *,
        approver: str,
        approver_role: str,
        args: dict[str, Any] | None = None,
        reason: str | None = None,
        args_hash: str | None = None,
        on_step: StepCallback | None = None,
        on_token: TokenCallback | None = None,
    ) -> RunOutcome:
        """Record a human decision on an approval request, then resume its thread.

        `args_hash` is the hash of the args the approver was shown (`approvals list` prints it): a
        decision for other args is refused. Without it the decision binds to the request as stored.
        """
        row = await self.records.get_approval(approval_id)
        if row is None:
            raise NotFound(f"no approval request {approval_id}")
        choice = ApprovalDecision(
            decision=decision,  # type: ignore[arg-type]
            approver=approver,
            args=args,
            reason=reason,
            args_hash=args_hash if args_hash is not None else row.args_hash,
        )
        execution = await self.records.get_execution(row.execution_id)
        b = self._arm_of(execution.version) if execution is not None else self.backends
        await check_approver(self.records, b.policy.current(), row, choice, approver_role)
        if execution is None:
            raise NotFound(f"no execution {row.execution_id} for approval {approval_id}")
        waiting = _waiting_on(await self.graph.aget_state(self._config(row.thread_id)))
        if row.status != "pending":
            hint = f"; if it did not go on: `keel resume {row.thread_id}`" if waiting == approval_id else ""
            raise Conflict(f"approval {approval_id} was already {row.status} by {row.decided_by}{hint}")
        if waiting != approval_id:
            # Checked before anything is recorded: a decision nobody can carry out must not be stored.
            raise NotFound(f"approval {approval_id}: its thread {row.thread_id} no longer waits for it")
        if row.tool not in b.registry:
            # Decided under another project's config (or none), the approved call would fail as an
            # unknown tool and the decision would be spent: refuse before anything is recorded.
            raise Conflict(
                f"approval {approval_id} is for tool {row.tool!r}, which the config in use does not have; "
                "decide it under the project's config (keel --config PATH approvals …)"
            )
        await record_decision(self.records, b.policy.current(), row, choice, approver_role)
        ctx = self._context(execution.user_id, execution.role, execution.tenant, execution.execution_id, b=b)
        return await self._drive(
            Command(resume=choice.as_resume()), row.thread_id, ctx, on_step, on_token, b=b
        )

    @staticmethod
    def _config(thread_id: str) -> dict[str, Any]:
        return {"configurable": {"thread_id": thread_id}, "recursion_limit": 200}

    async def _drive(
        self,
        payload: Any,
        thread_id: str,
        ctx: RunContext,
        on_step: StepCallback | None,
        on_token: TokenCallback | None = None,
        *,
        first: bool = False,
        b: Backends | None = None,
    ) -> RunOutcome:
        """Invoke `b`'s graph (default: this keel's own) for `ctx`'s execution; `first`: its first
        invocation (a new execution)."""
        b = b or self.backends
        arm = {"arm": b.arm} if b.arm is not None else {}
        config = b.telemetry.run_config(self._config(thread_id), ctx, first=first, **arm)
        async with self._lease(ctx.execution_id), _checkpoint_store(thread_id):
            return await self._stream(payload, thread_id, ctx, config, on_step, on_token, self._graph(b))

    @contextlib.asynccontextmanager
    async def _lease(self, execution_id: str) -> AsyncIterator[None]:
        """Renew the execution's lease every third of `run_lease_s` while this process drives the run."""
        period = self.backends.settings.run_lease_s / 3

        async def renew() -> None:
            while True:
                await asyncio.sleep(period)
                with contextlib.suppress(Exception):  # a missed renewal is retried; the run goes on
                    await self.records.heartbeat(execution_id)

        task = asyncio.create_task(renew())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _stream(
        self,
        payload: Any,
        thread_id: str,
        ctx: RunContext,
        config: dict[str, Any],
        on_step: StepCallback | None,
        on_token: TokenCallback | None,
        graph: CompiledStateGraph,
    ) -> RunOutcome:
        path: list[str] = []
        approval: dict[str, Any] | None = None
        # "messages" makes LangGraph ask the model to stream: only when someone listens for tokens.
        modes = ["updates", "messages"] if on_token is not None else ["updates"]
        async for mode, chunk in graph.astream(
            payload, config, context=ctx, stream_mode=modes, durability=self.durability
        ):
            if mode == "messages":
                message, meta = chunk
                if on_token is not None and isinstance(message, AIMessage) and (text := message.text):
                    on_token(str(meta.get("langgraph_node", "")), text)
                continue
            for node, update in chunk.items():
                if node == "__interrupt__":
                    approval = dict(update[0].value)
                    continue
                if node.startswith("__"):  # `__metadata__` of a resumed step: not a node
                    continue
                path.append(node)
                if on_step is not None:
                    on_step(node, update or {})
        values = (await graph.aget_state(self._config(thread_id))).values
        if approval is not None:
            return RunOutcome(
                thread_id=thread_id,
                execution_id=ctx.execution_id,
                status="awaiting_approval",
                approval=approval,
                path=path,
            )
        return RunOutcome(
            thread_id=thread_id,
            execution_id=ctx.execution_id,
            status=values.get("status", "failed"),
            answer=values.get("answer", ""),
            terminated_reason=values.get("terminated_reason"),
            path=path,
        )


@asynccontextmanager
async def _checkpoint_store(thread_id: str) -> AsyncIterator[None]:
    """The checkpoint database failing is one line (StoreUnavailable), not a raw driver traceback: what
    was checkpointed is saved, the step in flight is not; the stale-run sweep and `resume` take over."""
    try:
        yield
    except CHECKPOINT_STORE_ERRORS as exc:
        idle_ping.suspect()  # the records database may have gone with it: ping pooled connections first
        raise StoreUnavailable(
            f"the checkpoint database failed ({describe(exc)}); progress up to the last completed step "
            f"is saved: resume with thread {thread_id} once it is back"
        ) from exc


def _waiting_on(snapshot: Any) -> str | None:
    """The approval id a thread's pending interrupt waits for, or None when it waits for none."""
    for task in snapshot.tasks:
        for pending in task.interrupts:
            value = getattr(pending, "value", None)
            if isinstance(value, dict) and isinstance(value.get("approval_id"), str):
                return value["approval_id"]
    return None
