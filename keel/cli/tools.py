"""`keel tools list`: the tools a run may call under the project config, and what the policy says of each;
`keel tools pin`: record what the config's MCP servers list now, after review (keel.tools.mcp_pins)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from keel.cli._common import ConfigOpt, JsonOpt, fail, new_app, out, print_json, reason, show

__all__ = ["tools_app", "tool_rows", "pin_rows"]

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
    from keel.tools.mcp_servers import McpServers

    found = find_config(config_path)
    config = load_config(found) if found is not None else None
    settings = config.apply(Settings()) if config is not None else Settings()
    matrix = PolicyMatrix.load(settings.policy_file)
    has_mcp = config is not None and any(e.source == "mcp" for e in config.tools or ())
    servers = McpServers.of(config) if has_mcp and config is not None else None
    # Shown whatever their pins (a run refuses them until pinned): the pin column says which.
    states = servers.states() if servers is not None else {}
    rows = []
    for spec in registry_from_config(config, mcp=servers, check_pins=False):
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
                "pin": states.get(spec.name) if spec.source == "mcp" else None,
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
        source = f"{row['source']} ({row['pin']})" if row["pin"] else row["source"]
        cells.append((row["name"], source, row["effect"], row["resource"] or "-", text))
    show(
        out,
        Grid(f"Tools (policy for role {role})", ("tool", "source", "effect", "resource", "policy"), cells),
    )


def pin_rows(config_path: Path | None) -> tuple[Path, list[dict[str, Any]]]:
    """Pin every tool of the config's MCP servers as they list it now; (pins file, one dict per tool with
    its state before this pin: pinned, changed, new, unpinned; or removed)."""
    from keel.config import ConfigError, find_config, load_config
    from keel.tools.mcp import mcp_tool_name
    from keel.tools.mcp_pins import describe_change, pin_record
    from keel.tools.mcp_servers import McpServers

    found = find_config(config_path)
    if found is None:
        raise ConfigError("keel.yaml", 0, "no config file (give --config or set KEEL_CONFIG)")
    config = load_config(found)
    if not any(e.source == "mcp" for e in config.tools or ()):
        raise ConfigError(str(config.path), 0, "no mcp servers in this config: nothing to pin")
    servers = McpServers.of(config)
    rows: list[dict[str, Any]] = []
    for server, tools in servers.tools.items():
        for tool in tools:
            state = servers.pins.state(server, tool)
            record = pin_record(tool)
            change = (
                describe_change(servers.pins.servers[server][tool.name], record)
                if state == "changed"
                else None
            )
            rows.append(
                {
                    "server": server,
                    "tool": tool.name,
                    "name": mcp_tool_name(server, tool.name),
                    "was": state,
                    "sha256": record["sha256"],
                    "change": change,
                }
            )
        for gone in servers.pins.removed(server, tools):
            rows.append(
                {
                    "server": server,
                    "tool": gone,
                    "name": mcp_tool_name(server, gone),
                    "was": "removed",
                    "sha256": None,
                    "change": None,
                }
            )
    servers.pins.write(servers.tools)
    return servers.pins.path, rows


@tools_app.command("pin")
def tools_pin(config: Path | None = ConfigOpt, as_json: bool = JsonOpt) -> None:
    """Pin the MCP tools of the config as their servers list them now (name, description, inputSchema and
    a sha256 of them) in keel.pins.json beside keel.yaml. Run it after reviewing a server's tools: a run
    refuses a tool that differs from its pin, a new tool and an unpinned server."""
    from keel.render import Grid

    try:
        path, rows = pin_rows(config)
    except Exception as exc:  # noqa: BLE001 - every refusal is one line
        fail(reason(exc))
    if as_json:
        print_json(out, {"pins": str(path), "tools": rows})
        return
    cells = [(r["name"], r["was"], r["sha256"] or "-", r["change"] or "") for r in rows]
    show(out, Grid(f"Pinned in {path}", ("tool", "was", "sha256", "change"), cells))
