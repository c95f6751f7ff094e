"""Helpers every `keel` command uses: consoles, one-line errors, the async bridge."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from keel.render import print_json, step_line

__all__ = [
    "out",
    "err",
    "JsonOpt",
    "fail",
    "reason",
    "call",
    "open_keel",
    "show_outcome",
    "printer",
    "print_json",
    "EXIT_CODES_HELP",
    "exit_code_of",
]

T = TypeVar("T")
out = Console()
err = Console(stderr=True)
JsonOpt = typer.Option(False, "--json", help="Print JSON instead of tables.")


# One exit code per outcome class, the same for `run`, `resume` and `approvals approve|reject`, so a
# script can tell a finished run from one a guard stopped or a dependency failed without parsing text.
EXIT_SUCCEEDED = 0
EXIT_ERROR = 1
"""The request was refused or keel could not start (bad input, unknown thread, store down at start)."""
EXIT_AWAITING_APPROVAL = 3
EXIT_TERMINATED = 4
"""A guard or limit stopped the run: budget_exceeded, run_cost_cap, max_steps, timeout."""
EXIT_UNAVAILABLE = 5
"""A dependency failed mid-run: llm_unavailable, guard_unavailable, records_unavailable."""
EXIT_TOOLS_REFUSED = 6
"""The run answered, but every tool call it attempted was denied, rejected or failed."""
UNAVAILABLE_REASONS = frozenset({"llm_unavailable", "guard_unavailable", "records_unavailable"})

EXIT_CODES_HELP = (
    "Exit codes: 0 succeeded; 1 request refused or error; 2 usage error; 3 paused for approval; "
    "4 terminated by a guard or limit (budget_exceeded, run_cost_cap, max_steps, timeout); "
    "5 a dependency unavailable (llm_unavailable, guard_unavailable, records_unavailable, or a store "
    "down: nothing is lost, resume once it is back); "
    "6 every tool call was denied, rejected or failed (tools_refused)."
)


def exit_code_of(status: str, terminated_reason: str | None) -> int:
    """The documented exit code of a run outcome (see EXIT_CODES_HELP)."""
    if status == "succeeded" and terminated_reason is None:
        return EXIT_SUCCEEDED
    if status == "awaiting_approval":
        return EXIT_AWAITING_APPROVAL
    if terminated_reason == "tools_refused":
        return EXIT_TOOLS_REFUSED
    if terminated_reason in UNAVAILABLE_REASONS:
        return EXIT_UNAVAILABLE
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
    if isinstance(exc, ValidationError):
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        return f"invalid {exc.title}: {problems}"
    return str(exc) or type(exc).__name__


def call(fn: Callable[[], Awaitable[T]]) -> T:
    """Run an async command; any refusal becomes one line on stderr and exit code 1 (5 when a store keel
    needs is unavailable: nothing is lost, try again once it is back)."""
    from keel.errors import KeelError, StoreUnavailable
    from keel.guards.errors import GuardUnavailable
    from keel.hotstate import HotStateUnavailable
    from keel.records import RecordsUnavailable

    try:
        return asyncio.run(fn())
    except (StoreUnavailable, RecordsUnavailable, GuardUnavailable, HotStateUnavailable) as exc:
        fail(reason(exc), EXIT_UNAVAILABLE)
    except (KeelError, ValueError, KeyError, OSError) as exc:
        fail(reason(exc))
    except Exception as exc:  # noqa: BLE001 - a store being down is reported, not traced
        fail(f"{type(exc).__name__}: {exc}")
    raise AssertionError("unreachable")


def open_keel():  # noqa: ANN201 - an async context manager yielding keel.app.service.Keel
    """keel over the backends the environment's settings name."""
    from keel.app.service import Keel

    return Keel.open()


def show_outcome(outcome: Any, as_json: bool) -> None:
    """A run's outcome: JSON, or a status line and the answer; then exit with the outcome's code."""
    _print_outcome(outcome, as_json)
    code = exit_code_of(outcome.status, outcome.terminated_reason)
    if code != EXIT_SUCCEEDED:
        raise typer.Exit(code)


def _print_outcome(outcome: Any, as_json: bool) -> None:
    if as_json:
        print_json(out, outcome.as_dict())
        return
    if outcome.status == "awaiting_approval":
        a = outcome.approval or {}
        out.print(
            f"[yellow]paused for approval[/] {a.get('approval_id')}: {a.get('tool')} on "
            f"{a.get('resource')} (expires {a.get('expires_at')})"
        )
        out.print(f"approve with: keel approvals approve {a.get('approval_id')}")
    else:
        colour = "green" if outcome.status == "succeeded" else "yellow"
        suffix = f" ({outcome.terminated_reason})" if outcome.terminated_reason else ""
        out.print(f"[{colour}]{outcome.status}[/]{suffix}")
        out.print(outcome.answer, highlight=False, markup=False)
    out.print(f"thread {outcome.thread_id}  execution {outcome.execution_id}", style="dim")


def printer(as_json: bool) -> Callable[[str, dict[str, Any]], None] | None:
    """A step callback printing one line per node, unless JSON was asked for."""
    return None if as_json else (lambda node, update: out.print(step_line(node, update), highlight=False))
