"""Rendering of runs, approvals, audit rows and executions for the CLI and the demo.

A terminal gets rich tables; a pipe or a file gets plain tab-separated lines with a header row: no box
drawing, no colour, no wrapping, and ids are never cut, so what is printed can be pasted into the next
command (`keel resume THREAD`, `keel approvals approve ID --args-hash H`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:  # types only: the record dataclasses cost `keel --help` tens of milliseconds to build
    from keel.records import Approval, AuditRow, Execution

__all__ = [
    "Grid",
    "show",
    "plain",
    "section",
    "plain_cell",
    "step_line",
    "audit_table",
    "approvals_table",
    "executions_table",
    "print_json",
]


def plain_cell(value: Any) -> str:
    """A cell of a plain line: one line, no tabs (they separate the columns), `-` when empty."""
    text = " ".join(str(value).split()) if value is not None else ""
    return text or "-"


@dataclass(frozen=True, slots=True)
class Grid:
    """Rows to show: a rich table in a terminal (`console.print(grid)`), tab-separated lines elsewhere."""

    title: str
    columns: tuple[str, ...]
    rows: list[tuple[str, ...]] = field(default_factory=list)
    whole: frozenset[str] = frozenset()
    """Columns a terminal table never folds or cuts (ids to copy whole)."""

    def table(self) -> Table:
        table = Table(title=escape(self.title))
        for i, col in enumerate(self.columns):
            if col in self.whole:
                width = max([len(col), *(len(r[i]) for r in self.rows)])
                table.add_column(col, no_wrap=True, min_width=width)
            else:
                table.add_column(col, overflow="fold")
        for row in self.rows:
            table.add_row(*(Text(cell) for cell in row))
        return table

    def lines(self) -> list[str]:
        """The header row, then one line per row; columns separated by a tab."""
        return ["\t".join(self.columns), *("\t".join(plain_cell(c) for c in row) for row in self.rows)]

    def __rich__(self) -> Table:
        return self.table()


def plain(console: Console, text: str) -> None:
    """Write `text` and a newline as it is: no markup, no wrapping, tabs kept (rich expands them)."""
    if not console.quiet:
        console.file.write(text + "\n")


def show(console: Console, grid: Grid, *, titled: bool = False) -> None:
    """A table in a terminal; plain lines (for `cut -f`, `grep`, `awk -F'\\t'`) anywhere else, after a
    `title:` line when `titled` (a narrative such as the demo's, not a listing a script reads)."""
    if console.is_terminal:
        console.print(grid)
        return
    if titled:
        plain(console, f"{grid.title}:")
    for line in grid.lines():
        plain(console, line)


def section(console: Console, title: str, body: str) -> None:
    """A titled block of text: a panel in a terminal, a `title:` line and the text in a pipe."""
    if console.is_terminal:
        console.print(Panel(Text(body), title=escape(title)))
        return
    plain(console, f"{title}:")
    plain(console, body.rstrip("\n"))


def print_json(console: Console, value: Any) -> None:
    """JSON to the console's file, for `--json` (indented; highlighted only in a terminal)."""
    if console.is_terminal:
        console.print_json(data=value, default=str)
    else:
        plain(console, json.dumps(value, indent=2, default=str, ensure_ascii=False))


def _clip(text: str, most: int) -> str:
    """A summary of `text` in at most `most` characters, marked with … when cut (the whole is in the answer,
    the audit and `--json`)."""
    return text if len(text) <= most else text[: most - 1] + "…"


def step_line(node: str, update: dict[str, Any], *, streamed: bool = False) -> str:
    """One line (rich markup) describing what a node did (`streamed`: its text was shown as it came)."""
    bits: list[str] = []
    for message in update.get("messages") or []:
        calls = getattr(message, "tool_calls", None)
        if calls:
            bits += [
                f"calls {c['name']}({', '.join(f'{k}={_clip(str(v), 40)!r}' for k, v in c['args'].items())})"
                for c in calls
            ]
        elif getattr(message, "type", "") == "tool":
            first = str(message.content).strip().splitlines()[0] if str(message.content).strip() else ""
            bits.append(f"{message.name}: {_clip(first, 90)}")
    if node == "plan" and update.get("plan") and not streamed:
        bits.append(_clip(" ".join(update["plan"].split()), 120))
    if node == "permission_check":
        bits += [f"{c['name']} → {c['status']}" for c in update.get("pending", []) if c["status"] != "done"]
    if update.get("terminated_reason"):
        bits.append(f"terminated: {update['terminated_reason']}")
    if not bits:
        return f"[bold cyan]{node}[/]"
    return f"[bold cyan]{node:<16}[/] " + escape("; ".join(bits))


_POLICY_PATH = re.compile(r"at \S*/([^/\s]+\.ya?ml:\d+)")


def _short(text: str) -> str:
    """A rule as a table shows it: the policy file by name, not by its full path."""
    return _POLICY_PATH.sub(r"at \1", text)


def audit_table(rows: Sequence[AuditRow], title: str = "Audit trail") -> Grid:
    """Audit rows (args already redacted when written)."""
    return Grid(
        title,
        ("#", "time (UTC)", "event", "tool", "decision", "status", "resource", "detail"),
        [
            (
                str(r.id),
                r.ts.strftime("%Y-%m-%d %H:%M:%S"),
                r.event,
                r.tool or "",
                r.decision or "",
                r.status or "",
                r.resource or "",
                _short(r.detail or r.rule or ""),
            )
            for r in rows
        ],
    )


def approvals_table(rows: Sequence[Approval]) -> Grid:
    """Pending approval requests, with the whole call and its args_hash: the approver approves what is
    shown (`keel approvals approve ID --args-hash H`)."""
    from keel.approvals import approval_view  # here, not at import: keel --help needs no redaction rules

    out = []
    for a in rows:
        hidden = approval_view(a)["hidden"]
        note = f" (hidden: {', '.join(hidden)})" if hidden else ""
        out.append(
            (
                a.approval_id,
                a.thread_id,
                a.requester,
                a.tool,
                a.resource or "",
                json.dumps(a.args, ensure_ascii=False, default=str) + note,
                a.args_hash,
                a.expires_at.strftime("%Y-%m-%d %H:%M"),
                a.status,
            )
        )
    columns = ("id", "thread", "requester", "tool", "resource", "args", "args_hash", "expires", "status")
    return Grid("Approval requests", columns, out, whole=frozenset({"id", "thread", "args_hash"}))


def executions_table(rows: Sequence[Execution]) -> Grid:
    """Executions, newest first."""
    columns = (
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
    )
    return Grid(
        "Executions",
        columns,
        [
            (
                e.execution_id,
                e.thread_id,
                e.user_id,
                e.status,
                e.terminated_reason or "",
                str(e.steps),
                str(e.total_tokens),
                f"{e.cost:.6f}",
                ",".join(e.tools_used),
                e.task,
            )
            for e in rows
        ],
        whole=frozenset({"execution", "thread"}),
    )
