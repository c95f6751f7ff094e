"""`keel run`, `keel resume`, `keel demo`: start and continue runs."""

from __future__ import annotations

import getpass
from pathlib import Path

import typer

from keel.cli._common import EXIT_CODES_HELP, ConfigOpt, JsonOpt, call, drive, open_keel, out, print_json

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the run commands to the root app."""
    app.command(epilog=EXIT_CODES_HELP)(run)
    app.command(epilog=EXIT_CODES_HELP)(resume)
    app.command()(demo)
    app.command()(sweep)


def run(
    task: str = typer.Argument(..., help="What the agent should do."),
    user: str = typer.Option(
        getpass.getuser(), "--user", help="The user the run acts for (default: your login name)."
    ),
    role: str = typer.Option("user", "--role", help="Role in the permission matrix."),
    tenant: str = typer.Option("default", "--tenant"),
    thread: str | None = typer.Option(None, "--thread", help="Continue this thread."),
    config: Path | None = ConfigOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Run the agent on TASK for a user: each node's step and the model's reply are shown as they come
    (a spinner on long waits in a terminal), then the outcome. With --json: nothing while it runs, then
    one JSON object (thread_id, execution_id, status, answer, terminated_reason, approval, path)."""
    drive(
        lambda keel, shown: keel.run(task, user_id=user, role=role, tenant=tenant, thread_id=thread, **shown),
        as_json,
        config,
    )


def resume(
    thread: str = typer.Argument(..., help="The thread to continue."),
    config: Path | None = ConfigOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Continue a thread that crashed or stopped early (max steps, timeout), shown like `run`."""
    drive(lambda keel, shown: keel.resume(thread, **shown), as_json, config)


def sweep(config: Path | None = ConfigOpt, as_json: bool = JsonOpt) -> None:
    """Mark runs whose process died (lease KEEL_RUN_LEASE_S expired) `interrupted`; list them to resume."""

    async def go() -> list[tuple[str, str]]:
        async with open_keel(config) as keel:  # opening keel runs the sweep
            found = [await keel.records.get_execution(e) for e in keel.swept]
            return [(e.execution_id, e.thread_id) for e in found if e is not None]

    swept = call(go)
    if as_json:
        print_json(out, [{"execution_id": e, "thread_id": t} for e, t in swept])
        return
    out.print(f"{len(swept)} run(s) marked interrupted")
    for execution_id, thread_id in swept:
        out.print(f"execution {execution_id}: resume with `keel resume {thread_id}`")


def demo(as_json: bool = JsonOpt) -> None:
    """The offline demo on the embedded default (what `make run` shows). With --json: nothing while it
    runs, then the outcome, the approvals it decided and the thread's audit rows as one JSON object."""
    from keel.app.demo import run_demo

    result = call(lambda: run_demo(None if as_json else out))
    if as_json:
        print_json(out, result)
