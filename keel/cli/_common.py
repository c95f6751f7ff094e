"""Helpers every `keel` command uses: consoles, one-line errors, the async bridge."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from keel.render import print_json, show
from keel.stop_reasons import (
    EXIT_AWAITING_APPROVAL,
    EXIT_ERROR,
    EXIT_SUCCEEDED,
    EXIT_TERMINATED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    KEEL_STOP_REASONS,
    STOP_REASONS,
)

__all__ = [
    "out",
    "err",
    "new_app",
    "show",
    "JsonOpt",
    "ConfigOpt",
    "fail",
    "reason",
    "call",
    "open_keel",
    "show_outcome",
    "drive",
    "print_json",
    "EXIT_CODES_HELP",
    "EXIT_USAGE",
    "exit_code_of",
]

T = TypeVar("T")
# soft_wrap: a long line is never broken at the console's width (80 columns when not a terminal).
out = Console(soft_wrap=True, emoji=False)  # `:house:` in a model id or path is text, not an emoji
err = Console(stderr=True, soft_wrap=True, emoji=False)
JsonOpt = typer.Option(False, "--json", help="Print one JSON document on stdout instead of text.")
ConfigOpt = typer.Option(
    None, "--config", help="The project config (default: $KEEL_CONFIG, else ./keel.yaml, else none)."
)
_RICH_HELP = "rich" if sys.stdout.isatty() else None
"""Rich help panels in a terminal; plain click help in a pipe (no box drawing)."""


def new_app(help: str, **kwargs: Any) -> typer.Typer:  # noqa: A002 - typer's own name for it
    """A command group of `keel`: help shown when called bare, one-line usage errors (at the root)."""
    return typer.Typer(
        no_args_is_help=True,
        add_completion=False,
        rich_markup_mode=_RICH_HELP,
        help=help,
        **kwargs,
    )


# One exit code per outcome class, the same for `run`, `resume` and `approvals approve|reject`, so a
# script can tell a finished run from one a guard stopped or a dependency failed without parsing text.
# The class of each terminated_reason is in its row of keel/stop_reasons.py.


def _reasons(outcome: str) -> str:
    return ", ".join(
        r.name for r in STOP_REASONS.values() if r.outcome == outcome and r.name in KEEL_STOP_REASONS
    )


EXIT_CODES_HELP = (
    "Exit codes: 0 succeeded; 1 request refused or error; 2 usage error; 3 paused for approval; "
    f"4 terminated by a guard or limit ({_reasons('terminated')}); "
    f"5 a dependency unavailable ({_reasons('unavailable')}, or a store "
    "down: nothing is lost, resume once it is back); "
    f"6 every tool call was denied, rejected or failed ({_reasons('refused')})."
)


def exit_code_of(status: str, terminated_reason: str | None) -> int:
    """The documented exit code of a run outcome (see EXIT_CODES_HELP)."""
    if status == "succeeded" and terminated_reason is None:
        return EXIT_SUCCEEDED
    if status == "awaiting_approval":
        return EXIT_AWAITING_APPROVAL
    if terminated_reason in STOP_REASONS:
        return STOP_REASONS[terminated_reason].exit_code
    if status == "terminated":
        return EXIT_TERMINATED
    return EXIT_ERROR


def fail(message: str, code: int = EXIT_ERROR) -> None:
    """Print one line on stderr and exit with `code` (1 unless a store was unavailable: 5)."""
    line = " ".join(message.split())
    err.print(f"[red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def reason(exc: BaseException) -> str:
    """One line for the user: the exception's own words, without KeyError's quotes."""
    if type(exc) is KeyError and exc.args:
        return str(exc.args[0])
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        return f"invalid {exc.title}: {problems}"
    return str(exc) or type(exc).__name__


def call(fn: Callable[[], Awaitable[T]]) -> T:
    """Run an async command; any refusal becomes one line on stderr and exit code 1 (5 when a store keel
    needs is unavailable: nothing is lost, try again once it is back)."""
    import asyncio

    from keel.errors import KeelError, StoreUnavailable
    from keel.guards.errors import GuardUnavailable
    from keel.hotstate import HotStateUnavailable
    from keel.records import RecordsUnavailable

    try:
        return asyncio.run(fn())
    except BrokenPipeError:  # the reader closed the pipe (`| head`): KeelGroup stops quietly
        raise
    except (StoreUnavailable, RecordsUnavailable, GuardUnavailable, HotStateUnavailable) as exc:
        fail(reason(exc), EXIT_UNAVAILABLE)
    except (KeelError, ValueError, KeyError, OSError) as exc:
        fail(reason(exc))
    except Exception as exc:  # noqa: BLE001 - a store being down is reported, not traced
        fail(f"{type(exc).__name__}: {exc}")
    raise AssertionError("unreachable")


def open_keel(config: Path | None = None):  # noqa: ANN201 - an async context manager yielding keel.app.Keel
    """keel over the backends the environment's settings name, under the project config: `config`, else
    $KEEL_CONFIG, else ./keel.yaml, else none (keel's built-in tools). A bad config fails here (FILE:LINE)."""
    from keel.app.service import Keel
    from keel.config import find_config, load_config

    found = find_config(config)
    return Keel.open(config=load_config(found) if found is not None else None)


def show_outcome(outcome: Any, as_json: bool, config: Path | None = None) -> None:
    """A run's outcome: JSON, or a status line and the answer; then exit with the outcome's code.
    `config`: the project config the run used (named in the command it prints to approve)."""
    _print_outcome(outcome, as_json, config)
    code = exit_code_of(outcome.status, outcome.terminated_reason)
    if code != EXIT_SUCCEEDED:
        raise typer.Exit(code)


def _print_outcome(outcome: Any, as_json: bool, config: Path | None = None) -> None:
    if as_json:
        print_json(out, outcome.as_dict())
        return
    if outcome.status == "awaiting_approval":
        a = outcome.approval or {}
        out.print(
            f"[yellow]paused for approval[/] {a.get('approval_id')}: "
            + escape(f"{a.get('tool')} on {a.get('resource')} (expires {a.get('expires_at')})"),
            highlight=False,
        )
        under = f" --config {shlex.quote(str(config.absolute()))}" if config is not None else ""
        command = f"keel{under} approvals approve {a.get('approval_id')} --args-hash {a.get('args_hash')}"
        out.print(
            f"approve with: {command}",
            highlight=False,
            markup=False,
        )
    else:
        colour = "green" if outcome.status == "succeeded" else "yellow"
        suffix = f" ({outcome.terminated_reason})" if outcome.terminated_reason else ""
        out.print(f"[{colour}]{outcome.status}[/]{suffix}", highlight=False)
        out.print(outcome.answer, highlight=False, markup=False)
    out.print(f"thread {outcome.thread_id}  execution {outcome.execution_id}", style="dim", highlight=False)


def drive(
    start: Callable[[Any, dict[str, Any]], Awaitable[Any]], as_json: bool, config: Path | None = None
) -> None:
    """Run `start(keel, callbacks)` (a run, resume or decision) under the project config (`config`: see
    open_keel), showing its progress unless JSON was asked for, then show its outcome and exit with its
    code."""
    from keel.cli.progress import RunProgress
    from keel.config import find_config

    async def go() -> Any:
        async with open_keel(config) as keel:
            if as_json:
                return await start(keel, {})
            with RunProgress(out) as progress:
                return await start(keel, {"on_step": progress.on_step, "on_token": progress.on_token})

    outcome = call(go)
    show_outcome(outcome, as_json, find_config(config))
