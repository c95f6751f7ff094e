"""`keel report`: reports over the records. `keel report ab`: groups of executions compared (keel.report)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from keel.cli._common import JsonOpt, call, fail, new_app, out, print_json
from keel.render import plain

if TYPE_CHECKING:
    from keel.report import ABReport

__all__ = ["report_app"]

report_app = new_app(
    "Reports over the records database. Exit codes: 0 ok, 1 an unknown baseline or a bad option, "
    "5 the records database unavailable."
)


@report_app.command("ab")
def report_ab(
    since: str = typer.Option(
        "7d", "--since", help="How far back: executions started in the last 90s, 60m, 24h, 7d."
    ),
    baseline: str | None = typer.Option(
        None,
        "--baseline",
        help="The group the others are compared with (default: the one with the most runs).",
    ),
    min_sample: int | None = typer.Option(
        None,
        "--min-sample",
        min=1,
        help="Observations each group needs on a metric for a verdict (default: KEEL_REPORT_MIN_SAMPLE, 30).",
    ),
    png: Path | None = typer.Option(
        None,
        "--png",
        help="Also write the chart as a PNG image to this file (drawn without a plotting library).",
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Compare groups of executions (the rollout arm, else the version) on success rate, duration, cost per
    run, tool failure rate (per tool call) and feedback score: each group's figure with its 95 % interval
    (Wilson for rates, Student t for means), each group against the baseline (Newcombe for rates, Welch's t
    for means) with a verdict: better, worse, no difference detected, or not enough data. Only finished runs
    count. In a terminal the chart is coloured; in a pipe it is plain text; --png FILE also draws it as an
    image. With --json: the whole report (groups, figures, comparisons, verdict)."""
    from keel.observability.health import parse_window
    from keel.settings import Settings

    try:
        span = parse_window(since)
    except ValueError as exc:
        fail(str(exc).replace("window", "--since", 1))
    settings = Settings()
    wanted = min_sample if min_sample is not None else settings.report_min_sample
    stable = _stable_arm(settings)

    async def go() -> ABReport:
        from keel.records import Records

        records = Records.from_url(settings.records_url)
        try:
            await records.setup()
            return await records.ab_report(
                since=span, baseline=baseline, rollout_stable=stable, min_sample=wanted
            )
        finally:
            await records.close()

    report = call(go)
    if png is not None:
        from keel.report.png import write_ab_png

        try:
            write_ab_png(report, png)
        except OSError as exc:
            fail(f"cannot write {png}: {exc.strerror or exc}")
    if as_json:
        print_json(out, report.as_dict())
        return
    _print_report(report, since, png)


def _stable_arm(settings: Any) -> str | None:
    """The stable arm of the rollout in force (the project's rollout.yaml, or KEEL_ROLLOUT_FILE): the
    default baseline. None without a rollout; a bad config or rollout file is one line, exit 1."""
    from keel.app.arms import find_rollout
    from keel.config import find_config, load_config
    from keel.yamlfile import YamlFileError

    try:
        found = find_config()
        spec = find_rollout(settings, load_config(found) if found is not None else None)
    except YamlFileError as exc:
        fail(str(exc))
    return spec.stable if spec is not None else None


def _print_report(report: ABReport, since: str, png: Path | None) -> None:
    from keel.report.chart import chart_lines

    colour = out.is_terminal
    header: list[tuple[str, Any]] = [
        (
            "window",
            f"last {since} ({report.since.isoformat(timespec='seconds')} .. "
            f"{report.until.isoformat(timespec='seconds')})",
        ),
        ("baseline", f"{report.baseline} ({report.baseline_source})" if report.baseline else "-"),
        ("minimum sample", f"{report.min_sample} per group and metric"),
        ("groups", ", ".join(f"{g.name} ({g.kind}, {g.finished} finished)" for g in report.groups) or "-"),
    ]
    for label, value in header:
        plain(out, f"{label + ':':<16} {value}")
    for note in report.notes:
        plain(out, f"note: {note}")
    plain(out, "")
    if report.groups:
        for line in chart_lines(report, colour=colour):
            if colour:
                out.print(line, highlight=False, soft_wrap=True)
            else:
                plain(out, line)
    plain(out, f"verdict: {report.verdict}")
    if png is not None:
        plain(out, f"chart: {png}")
