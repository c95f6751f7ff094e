"""`keel policy`: ask the permission matrix (check, explain) and validate policy files."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from keel.cli._common import fail, new_app, out, reason

__all__ = ["policy_app"]

policy_app = new_app("The permission matrix.")

_RESOURCE = typer.Option(None, "--resource", help="The resource string, e.g. own:notes.md.")
_ARGS = typer.Option(None, "--args", help="Tool args as JSON; the resource is derived from them.")
_USER = typer.Option("cli", "--user", help="User whose resources --args refer to.")
_POLICY = typer.Option(None, "--policy", help="Policy file (default: settings).")


def _resolve(
    role: str, tool: str, resource: str | None, args: str | None, user: str, policy: Path | None
) -> tuple[Any, str]:
    """The matrix and the resource string of the call (derived from --args the way a run derives it)."""
    from keel.context import RunContext
    from keel.policies.matrix import PolicyMatrix
    from keel.settings import Settings
    from keel.tools.registry import default_registry
    from keel.tools.workspace import Workspace

    settings = Settings()
    matrix = PolicyMatrix.load(policy or settings.policy_file)
    if resource is None:
        if args is None:
            fail("give --resource or --args")
        spec = default_registry().get(tool)
        parsed = spec.args_model.model_validate(json.loads(args))
        resource = spec.resource(
            parsed, RunContext(user_id=user, role=role), Workspace(settings.workspace_root)
        )
    return matrix, resource


@policy_app.command("check")
def policy_check(
    role: str = typer.Option(..., "--role"),
    tool: str = typer.Option(..., "--tool"),
    resource: str | None = _RESOURCE,
    args: str | None = _ARGS,
    user: str = _USER,
    policy: Path | None = _POLICY,
    as_json: bool = typer.Option(True, "--json/--no-json"),
) -> None:
    """Which decision the matrix gives a call; prints JSON with `decision` and the matched rule."""
    try:
        matrix, resource = _resolve(role, tool, resource, args, user, policy)
        result = {
            **matrix.decide(role, tool, resource).as_dict(),
            "role": role,
            "tool": tool,
            "resource": resource,
        }
    except typer.Exit:
        raise
    except Exception as exc:  # noqa: BLE001 - every refusal is one line
        fail(reason(exc))
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        out.print(f"{result['decision']}: {result['explanation']}")


@policy_app.command("explain")
def policy_explain(
    role: str = typer.Option(..., "--role"),
    tool: str = typer.Option(..., "--tool"),
    resource: str | None = _RESOURCE,
    args: str | None = _ARGS,
    user: str = _USER,
    policy: Path | None = _POLICY,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Which rule decides a call and why: every earlier rule and which of its patterns did not match."""
    from keel.policies.explain import explain

    try:
        matrix, resource = _resolve(role, tool, resource, args, user, policy)
        result = explain(matrix, role, tool, resource)
    except typer.Exit:
        raise
    except Exception as exc:  # noqa: BLE001 - every refusal is one line
        fail(reason(exc))
    if as_json:
        sys.stdout.write(json.dumps(result.as_dict()) + "\n")
    else:
        for line in result.lines():
            out.print(line, highlight=False, markup=False, soft_wrap=True)


@policy_app.command("validate")
def policy_validate(
    file: Path | None = typer.Argument(None, help="Policy file (default: the one the settings name)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Load and check a policy file: `ok` and a summary, or `<file>:<line>: <reason>` and exit 1."""
    from keel.policies.matrix import PolicyMatrix
    from keel.settings import Settings

    try:
        matrix = PolicyMatrix.load(file or Settings().policy_file)
    except Exception as exc:  # noqa: BLE001 - every refusal is one line
        fail(reason(exc))
    summary = {
        "ok": True,
        "source": matrix.source,
        "rules": len(matrix.rules),
        "roles": sorted(matrix.roles),
        "approvers": sorted(matrix.approvers),
    }
    if as_json:
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        out.print(
            f"ok: {matrix.source}: {len(matrix.rules)} rules, roles {', '.join(summary['roles'])}, "
            f"approvers {', '.join(summary['approvers']) or 'none'}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
