"""`keel audit` and `keel executions`: what happened, from the records."""

from __future__ import annotations

from typing import Any

import typer

from keel.cli._common import JsonOpt, call, err, new_app, open_keel, out, print_json, show
from keel.render import audit_table, executions_table

__all__ = ["audit_app", "executions_app"]

audit_app = new_app("The append-only audit log.")
executions_app = new_app("Execution records (one per run request).")


@audit_app.command("tail")
def audit_tail(
    n: int = typer.Option(20, "-n", "--lines", min=1, max=10_000),
    thread: str | None = typer.Option(None, "--thread"),
    as_json: bool = JsonOpt,
) -> None:
    """The latest audit rows (or a thread's)."""

    async def go() -> Any:
        async with open_keel() as keel:
            if thread:
                return (await keel.records.audit_for(thread_id=thread, limit=10_000))[-n:]
            return await keel.records.tail_audit(n)

    rows = call(go)
    if as_json:
        print_json(out, [r.as_dict() for r in rows])
    else:
        show(out, audit_table(rows))


@audit_app.command("verify")
def audit_verify(as_json: bool = JsonOpt) -> None:
    """Check every audit hash chain against its sealed head: any changed, deleted or inserted row, or a
    changed head, is reported (exit 1); otherwise prints the sealed head over all chains."""
    from keel.records import Records
    from keel.settings import Settings

    async def go() -> Any:
        records = Records.from_url(Settings().records_url)
        try:
            await records.setup()
            return await records.verify_audit()
        finally:
            await records.close()

    report = call(go)
    if as_json:
        print_json(out, report.as_dict())
    elif report.ok:
        out.print(f"[green]ok[/] {report.describe()}", highlight=False, soft_wrap=True)
    if not report.ok:
        if not as_json:
            err.print(f"[red]error:[/] {report.describe()}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


@executions_app.command("list")
def executions_list(
    user: str | None = typer.Option(None, "--user"),
    limit: int = typer.Option(20, "--limit", min=1, max=1000),
    as_json: bool = JsonOpt,
) -> None:
    """Recent executions, newest first (in a pipe: tab-separated lines, ids whole for `keel resume`)."""

    async def go() -> Any:
        async with open_keel() as keel:
            return await keel.records.list_executions(user_id=user, limit=limit)

    rows = call(go)
    if as_json:
        print_json(out, [r.as_dict() for r in rows])
    else:
        show(out, executions_table(rows))
