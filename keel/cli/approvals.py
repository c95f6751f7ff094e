"""`keel approvals`: list pending requests, approve (or edit) and reject them."""

from __future__ import annotations

import getpass
import json
from typing import Any

import typer

from keel.cli._common import (
    EXIT_CODES_HELP,
    JsonOpt,
    call,
    drive,
    fail,
    new_app,
    open_keel,
    out,
    print_json,
    show,
)
from keel.policies import ADMIN_ROLE
from keel.render import approvals_table

__all__ = ["approvals_app"]

approvals_app = new_app("Pending approval requests: list, approve, reject.")


@approvals_app.command("list")
def approvals_list(
    user: str | None = typer.Option(None, "--user", help="Only this requester's."), as_json: bool = JsonOpt
) -> None:
    """Pending approval requests across threads, oldest first, with the args_hash to approve them by.

    In a pipe: tab-separated lines with a header row, ids and hashes whole."""

    async def go() -> Any:
        async with open_keel() as keel:
            return await keel.pending_approvals(requester=user)

    rows = call(go)
    if as_json:
        from keel.approvals import approval_view

        print_json(out, [approval_view(r) for r in rows])
    else:
        show(out, approvals_table(rows))


def _decide(
    approval_id: str,
    decision: str,
    approver: str,
    role: str,
    args: str | None,
    reason: str | None,
    as_json: bool,
    args_hash: str | None = None,
) -> None:
    parsed: dict[str, Any] | None = None
    if args is not None:
        try:
            parsed = json.loads(args)
        except json.JSONDecodeError as exc:
            fail(f"--args is not valid JSON: {exc}")
        if not isinstance(parsed, dict):
            fail("--args must be a JSON object")

    drive(
        lambda keel, shown: keel.decide(
            approval_id,
            decision,
            approver=approver,
            approver_role=role,
            args=parsed,
            reason=reason,
            args_hash=args_hash,
            **shown,
        ),
        as_json,
    )


_APPROVER = typer.Option(getpass.getuser(), "--approver", help="Who decides (recorded).")
_APPROVER_ROLE = typer.Option(
    ADMIN_ROLE, "--approver-role", help="The approver's role (must be an approver)."
)
_ARGS_HASH = typer.Option(
    None,
    "--args-hash",
    help="The args_hash you were shown (`approvals list`): a request whose args differ is refused.",
)


@approvals_app.command("approve", epilog=EXIT_CODES_HELP)
def approvals_approve(
    approval_id: str,
    approver: str = _APPROVER,
    role: str = _APPROVER_ROLE,
    args: str | None = typer.Option(None, "--args", help="Edited args as JSON (an edit)."),
    reason: str | None = typer.Option(None, "--reason"),
    args_hash: str | None = _ARGS_HASH,
    as_json: bool = JsonOpt,
) -> None:
    """Approve a request (with --args: approve an edited call) and resume its run."""
    decision = "edit" if args is not None else "approve"
    _decide(approval_id, decision, approver, role, args, reason, as_json, args_hash)


@approvals_app.command("reject", epilog=EXIT_CODES_HELP)
def approvals_reject(
    approval_id: str,
    approver: str = _APPROVER,
    role: str = _APPROVER_ROLE,
    reason: str | None = typer.Option(None, "--reason"),
    args_hash: str | None = _ARGS_HASH,
    as_json: bool = JsonOpt,
) -> None:
    """Reject a request and resume its run (the model is told)."""
    _decide(approval_id, "reject", approver, role, None, reason, as_json, args_hash)
