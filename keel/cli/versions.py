"""`keel versions`: which agent versions ran, and what changed between two (keel.app.versions)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from keel.cli._common import JsonOpt, call, fail, new_app, out, print_json, show
from keel.render import Grid, plain

if TYPE_CHECKING:
    from keel.records import AgentVersionRow, Records

__all__ = ["versions_app"]

versions_app = new_app(
    "Agent versions: the prompt, model chain, tools, policy, prices and limits a run ran with, named "
    "<name>@<content hash>. Exit codes: 0 ok, 1 an unknown version (or one without a stored manifest), "
    "5 the records database unavailable."
)


async def _with_records(fn: Any) -> Any:
    """`fn(records)` over the records database the settings name (migrated first), closed after."""
    from keel.records import Records
    from keel.settings import Settings

    records = Records.from_url(Settings().records_url)
    try:
        await records.setup()
        return await fn(records)
    finally:
        await records.close()


@versions_app.command("list")
def versions_list(as_json: bool = JsonOpt) -> None:
    """Versions seen, newest first: how many executions ran each, first and last seen (ids whole)."""

    async def go(records: Records) -> Any:
        return await records.version_usage()

    rows = call(lambda: _with_records(go))
    if as_json:
        print_json(out, [r.as_dict() for r in rows])
        return
    grid = Grid(
        "Agent versions",
        ("version", "executions", "first seen", "last seen", "manifest"),
        [
            (
                r.version_id,
                str(r.executions),
                r.first_seen.isoformat(timespec="seconds"),
                r.last_seen.isoformat(timespec="seconds"),
                "stored" if r.recorded else "none",
            )
            for r in rows
        ],
        whole=frozenset({"version"}),
    )
    show(out, grid)


@versions_app.command("show")
def versions_show(
    a: str = typer.Argument(..., help="A version id (`keel versions list`)."),
    b: str | None = typer.Argument(None, help="Another version: show what changed from A to B."),
    as_json: bool = JsonOpt,
) -> None:
    """A version's manifest; with B, what changed from A to B (prompt, model, tools, policy, prices,
    limits)."""
    from keel.app.versions import diff_manifests

    async def go(records: Records) -> list[AgentVersionRow | None]:
        return [await records.get_version(v) for v in (a, b) if v is not None]

    found = call(lambda: _with_records(go))
    for wanted, row in zip([v for v in (a, b) if v is not None], found, strict=True):
        if row is None:
            fail(f"no stored version {wanted!r}; `keel versions list` shows the versions seen")
    first = found[0]
    assert first is not None
    if b is None:
        if as_json:
            print_json(out, first.as_dict())
        else:
            _print_manifest(first)
        return
    second = found[1]
    assert second is not None
    changes = diff_manifests(first.manifest, second.manifest)
    if as_json:
        print_json(out, {"from": a, "to": b, "changes": changes})
        return
    plain(out, f"{a} -> {b}")
    for line in changes or ["no changes"]:
        plain(out, f"  {line}")


def _print_manifest(row: AgentVersionRow) -> None:
    m = row.manifest
    model = m.get("model", {})
    plain(out, f"version: {row.version_id}")
    plain(out, f"name: {row.name}")
    plain(out, f"created: {row.created_at.isoformat(timespec='seconds')}")
    plain(out, f"model: {model.get('primary')}")
    plain(out, f"fallback models: {', '.join(model.get('fallbacks') or []) or 'none'}")
    prompt = m.get("prompt", {})
    lines = str(prompt.get("system", "")).splitlines()
    plain(out, f"prompt: {len(lines)} lines; plan {'on' if prompt.get('plan') else 'off'}")
    for kind, entry in sorted(m.get("files", {}).items()):
        plain(out, f"{kind}: sha256 {entry.get('sha256')}")
    tools = m.get("tools", {})
    show(
        out,
        Grid(
            "Tools",
            ("tool", "source", "effect", "resource"),
            [
                (name, str(t.get("source")), str(t.get("effect")), str(t.get("resource") or ""))
                for name, t in sorted(tools.items())
            ],
            whole=frozenset({"tool"}),
        ),
        titled=True,
    )
