"""`keel health`: success rate, durations, tool failures and cost over a window, and the verdict."""

from __future__ import annotations

from typing import Any

import typer

from keel.cli._common import JsonOpt, call, fail, out, print_json
from keel.render import Grid, plain, show

__all__ = ["register"]

_COLOUR = {"healthy": "green", "degraded": "yellow", "unhealthy": "red"}


def register(app: typer.Typer) -> None:
    """Add `keel health` to the root app."""
    app.command()(health)


def health(
    window: str = typer.Option("60m", "--window", help="How far back: 90s, 60m, 24h, 7d."),
    as_json: bool = JsonOpt,
) -> None:
    """Service health from the execution records, against the thresholds in settings."""
    from keel.observability.health import HealthThresholds, compute_health, parse_window

    try:
        span = parse_window(window)
    except ValueError as exc:
        fail(str(exc))

    async def go() -> Any:
        from keel.memory.long_term import LongTermMemory
        from keel.records import Records
        from keel.settings import Settings

        settings = Settings()  # the records and the memory count: nothing else needs opening
        records = Records.from_url(settings.records_url)
        try:
            await records.setup()
            report = await compute_health(
                records, window=span, thresholds=HealthThresholds.from_settings(settings)
            )
        finally:
            await records.close()
        memories = await LongTermMemory.from_settings(settings).count() if settings.memory_enabled else 0
        return report, memories

    report, memories = call(go)
    if as_json:
        print_json(out, {**report.as_dict(), "long_term_memories": memories})
        return
    if out.is_terminal:
        out.print(f"[{_COLOUR[report.status]}]{report.status}[/] over the last {window}")
    else:
        plain(out, f"{report.status} over the last {window}")
    rows: list[tuple[str, str]] = []
    pct = lambda v: "-" if v is None else f"{v:.1%}"  # noqa: E731
    sec = lambda v: "-" if v is None else f"{v:.2f} s"  # noqa: E731
    for label, value in (
        ("executions", f"{report.total_executions} ({report.finished_executions} finished)"),
        ("success rate", pct(report.success_rate)),
        ("avg duration", sec(report.avg_duration_s)),
        ("p95 duration", sec(report.p95_duration_s)),
        (
            "tool failure rate",
            f"{pct(report.tool_failure_rate)} ({report.tool_failures}/{report.tool_calls})",
        ),
        ("cost", f"${report.cost_usd:f}"),
        ("long-term memories", str(memories)),
    ):
        rows.append((label, value))
    show(out, Grid("Health", ("metric", "value"), rows))
    for why in report.reasons:
        plain(out, f"- {why}")
