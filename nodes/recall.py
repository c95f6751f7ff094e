"""recall: start the execution record, reset the run's counters, bring back what the records hold."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime

from keel.app.backends import Backends
from keel.context import InvalidContext, RunContext, TaskTooLarge, check_task_size
from keel.graphs.state import AgentState
from keel.identity import run_context
from keel.memory.context import count_tokens
from keel.memory.run_memory import recall_memories
from keel.memory.types import MemoryScope
from keel.nodes._shared import thread_id_of
from keel.prompts import system_prompt
from keel.records import Execution
from keel.redaction import redact_text
from keel.textsafe import safe_text

__all__ = ["make_recall"]


def _task_of(state: AgentState) -> str:
    for message in reversed(state.get("messages", [])):
        if isinstance(message, HumanMessage):
            return message.text if hasattr(message, "text") else str(message.content)
    return ""


def _check_fits(b: Backends, run: RunContext, task: str) -> None:
    """Refuse, before anything is stored, a request the model's context budget cannot hold whole."""
    check_task_size(task, b.settings.max_task_chars)  # the Server calls the graph without Keel.run
    if b.memory is None:
        return
    budget = b.memory.context.budget_for(b.model_name).max_input_tokens
    need = count_tokens([SystemMessage(system_prompt(run, {})), HumanMessage(task)])
    if need > budget:
        raise TaskTooLarge(
            f"the task needs ~{need:,} tokens; {b.model_name} has a context budget of {budget:,} input tokens"
        )


def make_recall(b: Backends):
    """The recall node."""

    async def recall(
        state: AgentState, config: RunnableConfig, runtime: Runtime[RunContext]
    ) -> dict[str, Any]:
        await b.ready()
        run = run_context(runtime, config)  # on the Server: the authenticated user, never the client
        if run.role not in b.policy.roles:
            known = ", ".join(sorted(b.policy.roles))
            raise InvalidContext(f"unknown role {run.role!r} (known: {known})")
        task = safe_text(_task_of(state))  # state's str channels go into jsonb: no NUL
        _check_fits(b, run, task)
        now = time.time()
        recent = await b.records.list_executions(user_id=run.user_id, limit=3)
        await b.records.start_execution(
            Execution(
                execution_id=run.execution_id,
                thread_id=thread_id_of(config),
                user_id=run.user_id,
                role=run.role,
                tenant=run.tenant,
                version=run.version,
                task=redact_text(task),  # the execution record keeps no secret the user typed
                status="running",
                started_at=datetime.fromtimestamp(now, UTC),
                heartbeat_at=datetime.fromtimestamp(now, UTC),  # the lease starts with the run
            )
        )
        recalled = [
            f"earlier task {e.task[:120]!r} ended {e.status}"
            + (f" ({e.terminated_reason})" if e.terminated_reason else "")
            for e in recent
            if e.execution_id != run.execution_id and e.tenant == run.tenant
        ]
        if b.memory is not None:
            scope = MemoryScope(user_id=run.user_id, tenant=run.tenant)
            recalled += await recall_memories(b.memory.long_term, scope, task, b.settings.recall_k)
        return {
            "execution_id": run.execution_id,
            "task": task,
            "recalled": recalled,
            "plan": "",
            "steps": 0,
            "run_cost": 0.0,
            "input_tokens": 0,
            "output_tokens": 0,
            "started_at": now,
            "deadline": now + b.settings.run_timeout_s,
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
