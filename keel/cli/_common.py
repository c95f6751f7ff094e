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
]

T = TypeVar("T")
out = Console()
err = Console(stderr=True)
JsonOpt = typer.Option(False, "--json", help="Print JSON instead of tables.")


def fail(message: str) -> None:
    """Print one line on stderr and exit 1."""
    line = " ".join(message.split())
    err.print(f"[red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


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
    """Run an async command; any refusal becomes one line on stderr and exit code 1."""
    from keel.errors import KeelError

    try:
        return asyncio.run(fn())
    except (KeelError, ValueError, KeyError, OSError) as exc:
        fail(reason(exc))
    except Exception as exc:  # noqa: BLE001 - a store being down is reported, not traced
        fail(f"{type(exc).__name__}: {exc}")
    raise AssertionError("unreachable")


def open_keel():  # noqa: ANN201 - an async context manager yielding keel.service.Keel
    """keel over the backends the environment's settings name."""
    from keel.service import Keel

    return Keel.open()


def show_outcome(outcome: Any, as_json: bool) -> None:
    """A run's outcome: JSON, or a status line and the answer."""
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
