"""`keel budget`: a user's monthly budget, set it, and the ledger entries behind it."""

from __future__ import annotations

import re
from typing import Any

import typer

from keel.cli._common import JsonOpt, call, fail, new_app, open_keel, out, print_json, show
from keel.render import Grid

__all__ = ["budget_app"]

budget_app = new_app("Per-user monthly budgets (UTC months).")
UserOpt = typer.Option(..., "--user", help="The user whose budget this is.")
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def _user(user: str) -> str:
    from keel.context import RunContext

    return RunContext(user_id=user).user_id  # validates the id like a run would


def _ledger(keel: Any) -> Any:
    ledger = keel.backends.ledger
    if ledger is None:
        raise ValueError("budgets are not enabled in this keel")
    return ledger


def _show(status: Any) -> None:
    out.print(
        f"[bold]{status.user_id}[/] {status.month}: spent ${status.spent:.6f}, "
        f"reserved ${status.reserved:.6f}, limit ${status.limit:.6f}, "
        f"[green]left ${status.remaining:.6f}[/]; "
        f"resets {status.resets_at:%Y-%m-%d %H:%M} UTC",
        highlight=False,
    )


@budget_app.command("show")
def budget_show(user: str = UserOpt, as_json: bool = JsonOpt) -> None:
    """This month's limit, spend, open reservations and what is left."""

    async def go() -> Any:
        async with open_keel() as keel:
            return await _ledger(keel).status(_user(user))

    status = call(go)
    print_json(out, status.as_dict()) if as_json else _show(status)


@budget_app.command("set")
def budget_set(
    user: str = UserOpt,
    usd: float = typer.Option(..., "--usd", min=0, help="Monthly limit in USD."),
    as_json: bool = JsonOpt,
) -> None:
    """Set a user's monthly limit; it applies to the current month at once."""

    async def go() -> Any:
        async with open_keel() as keel:
            ledger = _ledger(keel)
            await ledger.set_limit(_user(user), usd)
            return await ledger.status(user)

    status = call(go)
    print_json(out, status.as_dict()) if as_json else _show(status)


@budget_app.command("history")
def budget_history(
    user: str = UserOpt,
    month: str | None = typer.Option(None, "--month", help="Only this month, YYYY-MM."),
    limit: int = typer.Option(20, "--limit", min=1, max=10_000),
    as_json: bool = JsonOpt,
) -> None:
    """The ledger entries (reservations and how they ended), newest first."""
    if month is not None and not _MONTH.match(month):
        fail(f"--month {month!r} is not YYYY-MM")

    async def go() -> Any:
        async with open_keel() as keel:
            return await _ledger(keel).history(_user(user), month=month, limit=limit)

    rows = call(go)
    if as_json:
        print_json(out, [r.as_dict() for r in rows])
        return
    columns = ("when (UTC)", "kind", "name", "estimate", "actual", "status", "thread")
    cells = [
        (
            f"{r.created_at:%Y-%m-%d %H:%M:%S}",
            r.kind,
            r.name,
            f"{r.estimate:.8f}",
            "" if r.actual is None else f"{r.actual:.8f}",
            r.status + (f" ({r.reason})" if r.reason else ""),
            r.thread_id,
        )
        for r in rows
    ]
    show(out, Grid(f"Budget ledger of {user}", columns, cells, whole=frozenset({"thread"})))
