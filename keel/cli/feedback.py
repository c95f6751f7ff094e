"""`keel feedback`: a user's score (and comment) on one of their executions, as `POST /keel/feedback`."""

from __future__ import annotations

import getpass
import re
from pathlib import Path
from typing import Any

import click
import typer
from typer.core import TyperCommand

from keel.cli._common import ConfigOpt, JsonOpt, call, open_keel, out, print_json
from keel.render import plain

__all__ = ["register"]


_NEGATIVE = re.compile(r"-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_TAKES_VALUE = frozenset({"--comment", "--user", "--role", "--config"})


def register(app: typer.Typer) -> None:
    """Add `keel feedback` to the root app."""
    app.command(cls=_FeedbackCommand)(feedback)


class _FeedbackCommand(TyperCommand):
    """`keel feedback ID -1`: a negative SCORE is the score, not an option (click reads `-1` as an unknown
    short option): a bare negative number that is no option's value is passed after `--`, in its place among
    the arguments. Unknown options are still usage errors."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            return super().parse_args(ctx, args)
        kept: list[str] = []
        numbers: list[str] = []
        for i, arg in enumerate(args):
            is_value = i > 0 and args[i - 1] in _TAKES_VALUE
            (numbers if _NEGATIVE.fullmatch(arg) and not is_value else kept).append(arg)
        return super().parse_args(ctx, [*kept, "--", *numbers] if numbers else kept)


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
