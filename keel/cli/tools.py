"""`keel tools list`: the tools a run may call under the project config, and what the policy says of each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from keel.cli._common import ConfigOpt, JsonOpt, fail, new_app, out, print_json, reason, show

__all__ = ["tools_app", "tool_rows"]

tools_app = new_app("The tools of the project config (keel.yaml), or keel's built-ins without one.")


def _generic_resource(template: str | None) -> str:
    """The resource a call of any args stands for: the template with each field as `*` (`order:*`)."""
    if template is None:
        return "*"
    from keel.tools.imported import template_fields

    return template.format_map(dict.fromkeys(template_fields(template), "*"))


def tool_rows(config_path: Path | None, role: str) -> list[dict[str, Any]]:
    """One dict per tool of the config: name, source, effect, resource template and the policy's answer
    for `role` (the rule deciding a call over any resource, and every rule that could match the tool)."""
    from fnmatch import fnmatchcase

    from keel.config import find_config, load_config
    from keel.policies.matrix import PolicyMatrix
    from keel.settings import Settings
    from keel.tools.from_config import registry_from_config

    found = find_config(config_path)
    config = load_config(found) if found is not None else None
    settings = config.apply(Settings()) if config is not None else Settings()
    matrix = PolicyMatrix.load(settings.policy_file)
    rows = []
    for spec in registry_from_config(config):
        decision = matrix.decide(role, spec.name, _generic_resource(spec.resource_template))
        candidates = [
            {"index": r.index, "line": r.line, "resource": r.resource, "effect": r.effect}
            for r in matrix.rules
            if fnmatchcase(role, r.role) and fnmatchcase(spec.name, r.tool)
        ]
        rows.append(
            {
                "name": spec.name,
                "source": spec.source,
                "effect": spec.effect,
                "resource": spec.resource_template,
                "timeout_s": spec.timeout_s,
                "policy": {**decision.as_dict(), "role": role, "rules": candidates},
            }
        )
    return rows


@tools_app.command("list")
def tools_list(
    config: Path | None = ConfigOpt,
    role: str = typer.Option("user", "--role", help="The calling role the policy column is for."),
    as_json: bool = JsonOpt,
) -> None:
    """Every tool with its source (builtin, python, mcp), effect, resource template and the policy rules
    that apply to --role for it, in the order the matrix tries them (`resource→effect`). --json adds the
    decision for a call over any resource (the template with `*` for each field: `order:*`)."""
    from keel.render import Grid

    try:
        rows = tool_rows(config, role)
    except Exception as exc:  # noqa: BLE001 - every refusal is one line
        fail(reason(exc))
    if as_json:
        print_json(out, rows)
        return
    cells = []
    for row in rows:
        # The rules for this role and tool in the order the matrix tries them, as `resource→effect`;
        # a call no rule matches is denied.
        rules = row["policy"]["rules"]
        text = ", ".join(f"{r['resource']}→{r['effect']} (#{r['index']})" for r in rules)
        if not any(r["resource"] == "*" for r in rules):
            text = f"{text}, else deny" if text else "deny (no rule)"
        cells.append((row["name"], row["source"], row["effect"], row["resource"] or "-", text))
    show(
        out,
        Grid(f"Tools (policy for role {role})", ("tool", "source", "effect", "resource", "policy"), cells),
    )
