"""`keel rollout`: the rollout in force (keel.rollout): its arms, and an operator's set, stop and resume."""

from __future__ import annotations

import getpass
from typing import Any

import typer

from keel.cli._common import JsonOpt, call, new_app, open_keel, out, print_json, show
from keel.render import Grid

__all__ = ["rollout_app"]

rollout_app = new_app(
    "Gradual rollouts: agent versions in weighted arms (rollout.yaml beside keel.yaml). Each change is "
    "shared by every process through the records database and audited. Exit codes: 0 ok, 1 no rollout, "
    "an unknown arm or a change that does not apply (stopping a stopped arm), 5 the records database "
    "unavailable."
)

_BY = typer.Option(getpass.getuser(), "--by", help="Who makes the change (recorded in the audit log).")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _show(arms: list[Any], as_json: bool) -> None:
    if as_json:
        print_json(out, {"arms": [a.as_dict() for a in arms]})
        return
    rows = []
    for a in arms:
        w = a.window
        state = "stopped" if a.stopped else ("stable" if a.stable else "running")
        cost = w.get("cost_per_run_usd")
        rows.append(
            (
                a.arm,
                state,
                a.version,
                f"{a.weight:g}"
                + ("" if a.weight == a.file_weight or a.stopped else f" (file {a.file_weight:g})"),
                _pct(a.share),
                str(w.get("runs", 0)),
                _pct(w.get("success_rate")),
                _pct(w.get("tool_failure_rate")),
                "-" if cost is None else f"${cost:.4f}",
                a.stop_reason or "",
            )
        )
    show(
        out,
        Grid(
            "Rollout",
            (
                "arm",
                "state",
                "version",
                "weight",
                "share",
                "runs",
                "success",
                "tool failures",
                "cost/run",
                "stop reason",
            ),
            rows,
            whole=frozenset({"arm", "version"}),
        ),
    )


@rollout_app.command("status")
def rollout_status(as_json: bool = JsonOpt) -> None:
    """Every arm: its version, weight in force, share of users, whether it is stopped and why, and its
    guard rails' window (runs, success rate, tool failure rate, cost per run)."""

    async def go() -> Any:
        async with open_keel() as keel:
            return await keel.rollout_status()

    _show(call(go), as_json)


@rollout_app.command("set")
def rollout_set(
    arm: str = typer.Argument(..., help="The arm (`keel rollout status`)."),
    weight: float = typer.Argument(..., min=0, help="Its new weight (relative to the other arms' weights)."),
    by: str = _BY,
    as_json: bool = JsonOpt,
) -> None:
    """Set an arm's weight for every process (only the users the change must move change arm)."""

    async def go() -> Any:
        async with open_keel() as keel:
            return await keel.rollout_set(arm, weight, by=by)

    _show(call(go), as_json)


@rollout_app.command("stop")
def rollout_stop(
    arm: str = typer.Argument(..., help="The arm to stop (not the stable one)."),
    reason: str = typer.Option("stopped by an operator", "--reason", help="Why (recorded)."),
    by: str = _BY,
    as_json: bool = JsonOpt,
) -> None:
    """Stop an arm: its users' new runs start in the stable arm (runs under way finish as they began)."""

    async def go() -> Any:
        async with open_keel() as keel:
            return await keel.rollout_stop(arm, by=by, reason=reason)

    _show(call(go), as_json)


@rollout_app.command("resume")
def rollout_resume(
    arm: str = typer.Argument(..., help="The stopped arm to resume."),
    by: str = _BY,
    as_json: bool = JsonOpt,
) -> None:
    """Resume a stopped arm (after a fix, or a stop that was wrong): its users return to it by weight."""

    async def go() -> Any:
        async with open_keel() as keel:
            return await keel.rollout_resume(arm, by=by)

    _show(call(go), as_json)
