"""The `keel` command line: run, resume, approvals, audit, executions, policy check, demo."""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from keel.render import approvals_table, audit_table, executions_table, print_json, step_line

T = TypeVar("T")
app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="keel: a guarded runtime for tool-using agents."
)
approvals_app = typer.Typer(no_args_is_help=True, help="Pending approval requests: list, approve, reject.")
audit_app = typer.Typer(no_args_is_help=True, help="The append-only audit log.")
executions_app = typer.Typer(no_args_is_help=True, help="Execution records (one per run request).")
policy_app = typer.Typer(no_args_is_help=True, help="The permission matrix.")
app.add_typer(approvals_app, name="approvals")
app.add_typer(audit_app, name="audit")
app.add_typer(executions_app, name="executions")
app.add_typer(policy_app, name="policy")

out = Console()
err = Console(stderr=True)
JsonOpt = typer.Option(False, "--json", help="Print JSON instead of tables.")


def _fail(message: str) -> None:
    line = " ".join(message.split())
    err.print(f"[red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def _reason(exc: BaseException) -> str:
    """One line for the user: the exception's own words, without KeyError's quotes."""
    if type(exc) is KeyError and exc.args:
        return str(exc.args[0])
    if isinstance(exc, ValidationError):
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        return f"invalid {exc.title}: {problems}"
    return str(exc) or type(exc).__name__


def _call(fn: Callable[[], Awaitable[T]]) -> T:
    """Run an async command; any refusal becomes one line on stderr and exit code 1."""
    from keel.errors import KeelError

    try:
        return asyncio.run(fn())
    except (KeelError, ValueError, KeyError, OSError) as exc:
        _fail(_reason(exc))
    except Exception as exc:  # noqa: BLE001 - a store being down is reported, not traced
        _fail(f"{type(exc).__name__}: {exc}")
    raise AssertionError("unreachable")


def _keel():
    from keel.service import Keel

    return Keel.open()


def _show_outcome(outcome: Any, as_json: bool) -> None:
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
        out.print(
            f"[{colour}]{outcome.status}[/]"
            + (f" ({outcome.terminated_reason})" if outcome.terminated_reason else "")
        )
        out.print(outcome.answer, highlight=False, markup=False)
    out.print(f"thread {outcome.thread_id}  execution {outcome.execution_id}", style="dim")


def _printer(as_json: bool) -> Callable[[str, dict[str, Any]], None] | None:
    return None if as_json else (lambda node, update: out.print(step_line(node, update), highlight=False))


@app.command()
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
        async with _keel() as keel:
            return await keel.run(
                task, user_id=user, role=role, tenant=tenant, thread_id=thread, on_step=_printer(as_json)
            )

    _show_outcome(_call(go), as_json)


@app.command()
def resume(
    thread: str = typer.Argument(..., help="The thread to continue."), as_json: bool = JsonOpt
) -> None:
    """Continue a thread that crashed or stopped early (max steps, timeout)."""

    async def go() -> Any:
        async with _keel() as keel:
            return await keel.resume(thread, on_step=_printer(as_json))

    _show_outcome(_call(go), as_json)


@approvals_app.command("list")
def approvals_list(
    user: str | None = typer.Option(None, "--user", help="Only this requester's."), as_json: bool = JsonOpt
) -> None:
    """Pending approval requests across threads, oldest first."""

    async def go() -> Any:
        async with _keel() as keel:
            return await keel.pending_approvals(requester=user)

    rows = _call(go)
    if as_json:
        print_json(out, [r.as_dict() for r in rows])
    else:
        out.print(approvals_table(rows))


def _decide(
    approval_id: str,
    decision: str,
    approver: str,
    role: str,
    args: str | None,
    reason: str | None,
    as_json: bool,
) -> None:
    parsed: dict[str, Any] | None = None
    if args is not None:
        try:
            parsed = json.loads(args)
        except json.JSONDecodeError as exc:
            _fail(f"--args is not valid JSON: {exc}")
        if not isinstance(parsed, dict):
            _fail("--args must be a JSON object")

    async def go() -> Any:
        async with _keel() as keel:
            return await keel.decide(
                approval_id,
                decision,
                approver=approver,
                approver_role=role,
                args=parsed,
                reason=reason,
                on_step=_printer(as_json),
            )

    _show_outcome(_call(go), as_json)


_APPROVER = typer.Option(getpass.getuser(), "--approver", help="Who decides (recorded).")
_APPROVER_ROLE = typer.Option("admin", "--approver-role", help="The approver's role (must be an approver).")


@approvals_app.command("approve")
def approvals_approve(
    approval_id: str,
    approver: str = _APPROVER,
    role: str = _APPROVER_ROLE,
    args: str | None = typer.Option(None, "--args", help="Edited args as JSON (an edit)."),
    reason: str | None = typer.Option(None, "--reason"),
    as_json: bool = JsonOpt,
) -> None:
    """Approve a request (with --args: approve an edited call) and resume its run."""
    _decide(approval_id, "edit" if args is not None else "approve", approver, role, args, reason, as_json)


@approvals_app.command("reject")
def approvals_reject(
    approval_id: str,
    approver: str = _APPROVER,
    role: str = _APPROVER_ROLE,
    reason: str | None = typer.Option(None, "--reason"),
    as_json: bool = JsonOpt,
) -> None:
    """Reject a request and resume its run (the model is told)."""
    _decide(approval_id, "reject", approver, role, None, reason, as_json)


@audit_app.command("tail")
def audit_tail(
    n: int = typer.Option(20, "-n", "--lines", min=1, max=10_000),
    thread: str | None = typer.Option(None, "--thread"),
    as_json: bool = JsonOpt,
) -> None:
    """The latest audit rows (or a thread's)."""

    async def go() -> Any:
        async with _keel() as keel:
            if thread:
                return (await keel.records.audit_for(thread_id=thread, limit=10_000))[-n:]
            return await keel.records.tail_audit(n)

    rows = _call(go)
    if as_json:
        print_json(out, [r.as_dict() for r in rows])
    else:
        out.print(audit_table(rows))


@executions_app.command("list")
def executions_list(
    user: str | None = typer.Option(None, "--user"),
    limit: int = typer.Option(20, "--limit", min=1, max=1000),
    as_json: bool = JsonOpt,
) -> None:
    """Recent executions, newest first."""

    async def go() -> Any:
        async with _keel() as keel:
            return await keel.records.list_executions(user_id=user, limit=limit)

    rows = _call(go)
    if as_json:
        print_json(out, [r.as_dict() for r in rows])
    else:
        out.print(executions_table(rows))


@policy_app.command("check")
def policy_check(
    role: str = typer.Option(..., "--role"),
    tool: str = typer.Option(..., "--tool"),
    resource: str | None = typer.Option(None, "--resource", help="The resource string."),
    args: str | None = typer.Option(None, "--args", help="Tool args as JSON; the resource is derived."),
    user: str = typer.Option("cli", "--user", help="User whose resources --args refer to."),
    policy: Path | None = typer.Option(None, "--policy", help="Policy file (default: settings)."),
    as_json: bool = typer.Option(True, "--json/--no-json"),
) -> None:
    """Which decision the matrix gives a call; prints JSON with `decision` and the matched rule."""
    from keel.context import RunContext
    from keel.settings import Settings
    from policies.matrix import PolicyMatrix
    from tools.registry import default_registry
    from tools.workspace import Workspace

    try:
        settings = Settings()
        matrix = PolicyMatrix.load(policy or settings.policy_file)
        if resource is None:
            if args is None:
                _fail("give --resource or --args")
            spec = default_registry().get(tool)
            parsed = spec.args_model.model_validate(json.loads(args))
            resource = spec.resource(
                parsed, RunContext(user_id=user, role=role), Workspace(settings.workspace_root)
            )
        result = {
            **matrix.decide(role, tool, resource).as_dict(),
            "role": role,
            "tool": tool,
            "resource": resource,
        }
    except typer.Exit:
        raise
    except Exception as exc:  # noqa: BLE001 - every refusal is one line
        _fail(_reason(exc))
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        out.print(f"{result['decision']}: {result['explanation']}")


@app.command()
def demo() -> None:
    """The offline demo on the embedded default (what `make run` shows)."""
    from keel.demo import run_demo

    _call(lambda: run_demo(out))


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
