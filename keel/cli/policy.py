"""`keel policy`: ask the permission matrix."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from keel.cli._common import fail, out, reason

__all__ = ["policy_app"]

policy_app = typer.Typer(no_args_is_help=True, help="The permission matrix.")


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
                fail("give --resource or --args")
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
        fail(reason(exc))
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        out.print(f"{result['decision']}: {result['explanation']}")
