"""`keel run`, `keel resume`, `keel demo`: start and continue runs."""

from __future__ import annotations

from typing import Any

import typer

from keel.cli._common import (
    EXIT_CODES_HELP,
    JsonOpt,
    call,
    open_keel,
    out,
    print_json,
    printer,
    show_outcome,
)

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the run commands to the root app."""
    app.command(epilog=EXIT_CODES_HELP)(run)
    app.command(epilog=EXIT_CODES_HELP)(resume)
    app.command()(demo)
    app.command()(sweep)


def run(
    task: str = typer.Argument(..., help="What the agent should do."),
    user: str = typer.Option(..., "--user", help="The user the run acts for."),
    role: str = typer.Option("user", "--role", help="Role in the permission matrix."),
    tenant: str = typer.Option("default", "--tenant"),
    thread: str | None = typer.Option(None, "--thread", help="Continue this thread."),
    as_json: bool = JsonOpt,
) -> None:
    """Run the agent on TASK for a user."""

    async def go() -> Any:
        async with open_keel() as keel:
            return await keel.run(
                task, user_id=user, role=role, tenant=tenant, thread_id=thread, on_step=printer(as_json)
            )

    show_outcome(call(go), as_json)


def resume(
    thread: str = typer.Argument(..., help="The thread to continue."), as_json: bool = JsonOpt
) -> None:
    """Continue a thread that crashed or stopped early (max steps, timeout)."""

    async def go() -> Any:
        async with open_keel() as keel:
            return await keel.resume(thread, on_step=printer(as_json))

    show_outcome(call(go), as_json)


def sweep(as_json: bool = JsonOpt) -> None:
    """Mark runs whose process died (lease KEEL_RUN_LEASE_S expired) `interrupted`; list them to resume."""

    async def go() -> list[tuple[str, str]]:
        async with open_keel() as keel:  # opening keel runs the sweep
            found = [await keel.records.get_execution(e) for e in keel.swept]
            return [(e.execution_id, e.thread_id) for e in found if e is not None]

    swept = call(go)
    if as_json:
        print_json(out, [{"execution_id": e, "thread_id": t} for e, t in swept])
        return
    out.print(f"{len(swept)} run(s) marked interrupted")
    for execution_id, thread_id in swept:
        out.print(f"execution {execution_id}: resume with `keel resume {thread_id}`")


def demo() -> None:
    """The offline demo on the embedded default (what `make run` shows)."""
    from keel.app.demo import run_demo

    call(lambda: run_demo(out))
