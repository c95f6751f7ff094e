"""Rich rendering of runs, approvals, audit rows and executions for the CLI and the demo."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from keel.records import Approval, AuditRow, Execution
from keel.redaction import hidden_fields

__all__ = ["step_line", "audit_table", "approval_hidden", "approvals_table", "executions_table"]


def step_line(node: str, update: dict[str, Any]) -> str:
    """One line describing what a node did."""
    bits: list[str] = []
    for message in update.get("messages") or []:
        calls = getattr(message, "tool_calls", None)
        if calls:
            bits += [
                f"calls {c['name']}({', '.join(f'{k}={str(v)[:40]!r}' for k, v in c['args'].items())})"
                for c in calls
            ]
        elif getattr(message, "type", "") == "tool":
            first = str(message.content).strip().splitlines()[0] if str(message.content).strip() else ""
            bits.append(f"{message.name}: {first[:90]}")
    if node == "plan" and update.get("plan"):
        bits.append(update["plan"][:120])
    if node == "permission_check":
        bits += [f"{c['name']} → {c['status']}" for c in update.get("pending", []) if c["status"] != "done"]
    if update.get("terminated_reason"):
        bits.append(f"terminated: {update['terminated_reason']}")
    return f"[bold cyan]{node:<16}[/] " + escape("; ".join(bits))


_POLICY_PATH = re.compile(r"at \S*/([^/\s]+\.ya?ml:\d+)")


def _short(text: str) -> str:
    """A rule as a table shows it: the policy file by name, not by its full path."""
    return _POLICY_PATH.sub(r"at \1", text)


def audit_table(rows: Sequence[AuditRow], title: str = "Audit trail") -> Table:
    """Audit rows as a table (args already redacted when written)."""
    table = Table(title=title, show_lines=False)
    for col in ("#", "time", "event", "tool", "decision", "status", "resource", "detail"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(
            str(r.id),
            r.ts.strftime("%H:%M:%S"),
            r.event,
            r.tool or "",
            r.decision or "",
            r.status or "",
            r.resource or "",
            _short(r.detail or r.rule or "")[:80],
        )
    return table


def approval_hidden(row: Approval) -> list[str]:
    """The fields of an approval request whose value was hidden from the approver (a secret)."""
    return hidden_fields({"args": row.args, "resource": row.resource})


def approvals_table(rows: Sequence[Approval]) -> Table:
    """Pending approval requests, with the whole call: the approver approves what is shown."""
    table = Table(title="Approval requests")
    for col in ("id", "thread", "requester", "tool", "resource", "args", "expires", "status"):
        table.add_column(col, overflow="fold")
    for a in rows:
        hidden = approval_hidden(a)
        note = f"\n(hidden: {', '.join(hidden)})" if hidden else ""
        table.add_row(
            a.approval_id,
            a.thread_id[:12],
            a.requester,
            a.tool,
            escape(a.resource or ""),
            escape(json.dumps(a.args, ensure_ascii=False, default=str) + note),
            a.expires_at.strftime("%Y-%m-%d %H:%M"),
            a.status,
        )
    return table


def executions_table(rows: Sequence[Execution]) -> Table:
    """Executions, newest first."""
    table = Table(title="Executions")
    for col in (
        "execution",
        "thread",
        "user",
        "status",
        "reason",
        "steps",
        "tokens",
        "cost $",
        "tools",
        "task",
    ):
        table.add_column(col, overflow="fold")
    for e in rows:
        table.add_row(
            e.execution_id[:12],
            e.thread_id[:12],
            e.user_id,
            e.status,
            e.terminated_reason or "",
            str(e.steps),
            str(e.total_tokens),
            f"{e.cost:.6f}",
            ",".join(e.tools_used),
            e.task[:50],
        )
    return table


def print_json(console: Console, value: Any) -> None:
    """JSON to stdout, for `--json`."""
    console.print_json(data=value, default=str)
