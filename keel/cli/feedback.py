"""`keel feedback`: a user's score (and comment) on one of their executions, as `POST /keel/feedback`."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any

import typer

from keel.cli._common import ConfigOpt, JsonOpt, call, open_keel, out, print_json
from keel.render import plain

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add `keel feedback` to the root app (a negative SCORE such as -1 is a score, not an option)."""
    app.command(context_settings={"ignore_unknown_options": True})(feedback)


def feedback(
    execution_id: str = typer.Argument(..., help="The execution (`keel executions list`)."),
    score: float = typer.Argument(..., help="A number in [-1, 1]: -1/0/1, or a rating from 0 to 1."),
    comment: str | None = typer.Option(None, "--comment", help="What was good or bad (stored redacted)."),
    user: str = typer.Option(
        getpass.getuser(), "--user", help="Who gives it: the execution's user (default: your login name)."
    ),
    role: str = typer.Option("user", "--role", help="The giver's role (admin: any user's execution)."),
    config: Path | None = ConfigOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Score one of your executions (giving it again replaces your score and comment). Another user's
    execution is `no execution ID` (exit 1), a score out of range names the rule (exit 1). With --json:
    the stored row (id, execution_id, thread_id, user_id, role, score, comment, version, created_at,
    updated_at)."""
    from keel.feedback import feedback_view, score_number

    async def go() -> Any:
        async with open_keel(config) as keel:
            return await keel.feedback(execution_id, score, comment, user_id=user, role=role)

    row = call(go)
    if as_json:
        print_json(out, feedback_view(row))
        return
    line = f"feedback {score_number(row.score):+g} on execution {row.execution_id} by {row.user_id}"
    plain(out, line + (": " + " ".join(row.comment.split()) if row.comment else ""))
