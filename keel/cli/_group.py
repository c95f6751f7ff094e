"""The root command group: a usage error is one line on stderr and exit code 2, never a help box."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

__all__ = ["KeelGroup", "usage_line"]


def usage_line(exc: typer.TyperException) -> str:
    """One line naming the command, the problem and where the help is."""
    message = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    if ctx is None:
        return f"error: {message}"
    return f"error: {ctx.command_path}: {message} (see '{ctx.command_path} --help')"


class KeelGroup(TyperGroup):
    """Runs the command like click's standalone mode, but reports click's errors in one line (exit code 2,
    keel.stop_reasons.EXIT_USAGE: click's own for usage errors).

    (Typer prints a usage line, a hint and a boxed panel; click prints three lines. A script reading
    stderr gets one line, and the exit code tells a usage error (2) from a failed command.)
    """

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.TyperException as exc:  # typer's (vendored) click errors derive from it
            if type(exc).__name__ == "NoArgsIsHelpError":  # `keel`, `keel approvals`: the help, as asked
                if message := exc.format_message().strip():  # (rich help is printed already)
                    typer.echo(message, err=True)
            else:
                typer.echo(usage_line(exc), err=True)
            sys.exit(exc.exit_code)
        except BrokenPipeError:  # `keel executions list | head -1`: the reader has what it wanted
            _silence_stdout()
            sys.exit(1)
        except typer.Abort:
            typer.echo("error: aborted", err=True)
            sys.exit(1)
        # Without standalone mode click returns the code of a `typer.Exit` and the command's value
        # otherwise (None for every keel command).
        sys.exit(code if isinstance(code, int) else 0)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail on the closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
