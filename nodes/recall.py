"""recall: start the execution record, reset the run's counters, bring back what the records hold."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime

from keel.context import InvalidContext, RunContext, TaskTooLarge, check_task_size
from keel.graphs.state import AgentState
from keel.identity import run_context
from keel.memory.context import count_tokens
from keel.memory.run_memory import queued_memory_lines, recall_memories
from keel.memory.stores import MemoryBackends
from keel.memory.types import MemoryScope
from keel.nodes._shared import thread_id_of
from keel.policies.watcher import PolicySource
from keel.prompts import system_prompt
from keel.records import Execution, Records
from keel.redaction import redact_text
from keel.settings import Settings
from keel.textsafe import safe_text

__all__ = ["make_recall"]


def _task_of(state: AgentState) -> str:
    for message in reversed(state.get("messages", [])):
        if isinstance(message, HumanMessage):
            return message.text if hasattr(message, "text") else str(message.content)
    return ""


def _check_fits(
    settings: Settings,
    memory: MemoryBackends | None,
    model_name: str,
    run: RunContext,
    task: str,
    instructions: str | None,
) -> None:
    """Refuse, before anything is stored, a request the model's context budget cannot hold whole."""
    check_task_size(task, settings.max_task_chars)  # the Server calls the graph without Keel.run
    if memory is None:
        return
    budget = memory.context.budget_for(model_name).max_input_tokens
    need = count_tokens([SystemMessage(system_prompt(run, {}, instructions)), HumanMessage(task)])
    if need > budget:
        raise TaskTooLarge(
            f"the task needs ~{need:,} tokens; {model_name} has a context budget of {budget:,} input tokens"
        )


def make_recall(
    *,
    records: Records,
    policy: PolicySource,
    memory: MemoryBackends | None,
    settings: Settings,
    model_name: str,
    ready: Callable[[], Awaitable[None]],
    instructions: str | None = None,
    arm: str | None = None,
):
    """The recall node. `ready` makes sure the records database is migrated before the first write;
    `instructions` (the project's system prompt) count in the context budget a task must fit; `arm`: the
    rollout arm this graph runs, recorded with the execution."""

    async def recall(
        state: AgentState, config: RunnableConfig, runtime: Runtime[RunContext]
    ) -> dict[str, Any]:
        await ready()
        run = run_context(runtime, config)  # on the Server: the authenticated user, never the client
        roles = policy.current().roles
        if run.role not in roles:
            raise InvalidContext(f"unknown role {run.role!r} (known: {', '.join(sorted(roles))})")
        task = safe_text(_task_of(state))  # state's str channels go into jsonb: no NUL
        _check_fits(settings, memory, model_name, run, task, instructions)
        now = time.time()
        # One transaction: the user's recent executions, the run memories still queued for the memory
        # writer, and the new execution record.
        queued_k = settings.recall_k if memory is not None and memory.writer is not None else 0
        async with records.transaction() as tx:
            recent, queued = await records.recall_reads(
                run.user_id, run.tenant, limit=3, pending=queued_k, conn=tx
            )
            await records.start_execution(
                Execution(
                    execution_id=run.execution_id,
                    thread_id=thread_id_of(config),
                    user_id=run.user_id,
                    role=run.role,
                    tenant=run.tenant,
                    version=run.version,
                    arm=arm,
                    task=redact_text(task),  # the execution record keeps no secret the user typed
                    status="running",
                    started_at=datetime.fromtimestamp(now, UTC),
                    heartbeat_at=datetime.fromtimestamp(now, UTC),  # the lease starts with the run
                ),
                conn=tx,
            )
        recalled = [
            f"earlier task {e.task[:120]!r} ended {e.status}"
            + (f" ({e.terminated_reason})" if e.terminated_reason else "")
            for e in recent
            if e.execution_id != run.execution_id and e.tenant == run.tenant
        ]
        if memory is not None:
            scope = MemoryScope(user_id=run.user_id, tenant=run.tenant)
            # Read-your-writes: memories of the user's runs the writer has not stored yet come from the queue.
            pending = queued_memory_lines(queued, settings.recall_k)
            found = await recall_memories(memory.long_term, scope, task, settings.recall_k)
            recalled += pending + [line for line in found if line not in pending]
        return {
            "execution_id": run.execution_id,
            "task": task,
            "recalled": recalled,
            "plan": "",
            "steps": 0,
            "run_cost": 0.0,
            "input_tokens": 0,
            "output_tokens": 0,
            "cached_model_calls": 0,
            "started_at": now,
            "deadline": now + settings.run_timeout_s,
            "pending": [],
            "tools_used": [],
            "tools_failed": [],
            "tools_refused": [],
            "terminated_reason": None,
            "model_index": 0,
            "status": "running",
            "answer": "",
        }

    return recall
