"""The A/B report as text: per metric, one bar per group with its interval, then the verdicts.

    success rate (95 %: Wilson; difference by Newcombe; higher is better)
      stable  |==========================[==|=]   |  90.0%  [78.6%, 95.7%]  n=50  baseline
      canary  |=====================[=====|=====] |  80.0%  [66.9%, 88.8%]  n=50
      canary vs stable: no difference detected (-10.0 pp [-24.2, +4.3])

`=` runs from zero to the estimate (`|`), `[` and `]` are the interval's ends (`-` where the interval goes
past the bar). Rates are drawn on 0..100 %, the feedback score on -1..1, durations and costs on 0..the
largest upper end. Plain ASCII, names never cut, so it reads the same in a terminal, a pipe or a file;
`colour=True` adds rich markup (the CLI asks for it only in a terminal).
"""

from __future__ import annotations

from rich.markup import escape

from keel.report.ab import METRICS, ABReport, Metric
from keel.report.stats import Interval

__all__ = ["chart_lines", "format_value", "format_difference", "scale"]

WIDTH = 36
_LEAST = {"rate": 1, "mean": 2}
_COLOUR = {"better": "green", "worse": "red", "no difference detected": "yellow", "not enough data": "dim"}


def format_value(metric: Metric, value: float | None) -> str:
    """A figure as the report prints it: 90.0%, 12.34 s, $0.0123, +0.42."""
    if value is None:
        return "-"
    if metric.kind == "rate":
        return f"{value:.1%}"
    if metric.name == "duration_s":
        return f"{value:.2f} s"
    if metric.name == "cost_per_run":
        return f"${value:.4f}"
    return f"{value:+.2f}"


def format_difference(metric: Metric, d: Interval) -> str:
    """Candidate minus baseline: `-10.0 pp [-24.2, +4.3]` for rates, in the metric's unit otherwise."""
    if metric.kind == "rate":
        return f"{d.estimate * 100:+.1f} pp [{d.low * 100:+.1f}, {d.high * 100:+.1f}]"
    unit = {"duration_s": " s", "cost_per_run": " USD"}.get(metric.name, "")
    digits = 4 if metric.name == "cost_per_run" else 2
    return f"{d.estimate:+.{digits}f}{unit} [{d.low:+.{digits}f}, {d.high:+.{digits}f}]"


def scale(report: ABReport, metric: Metric) -> tuple[float, float]:
    if metric.kind == "rate":
        return 0.0, 1.0
    if metric.name == "feedback_score":
        return -1.0, 1.0
    tops = [
        max(f.interval.high, f.interval.estimate)
        for g in report.groups
        if (f := report.figures[g.name][metric.name]).interval is not None
    ]
    top = max(tops, default=0.0)
    return 0.0, top if top > 0 else 1.0


def _bar(interval: Interval, lo: float, hi: float) -> str:
    def at(v: float) -> int:
        return round((min(max(v, lo), hi) - lo) / (hi - lo) * (WIDTH - 1))

    cells = [" "] * WIDTH
    zero, est = at(0.0), at(interval.estimate)
    for i in range(min(zero, est), max(zero, est) + 1):
        cells[i] = "="
    low, high = at(interval.low), at(interval.high)
    for i in range(low, high + 1):
        cells[i] = "-" if cells[i] == " " else cells[i]
    cells[low], cells[high], cells[est] = "[", "]", "|"
    return "".join(cells)


def chart_lines(report: ABReport, *, colour: bool = False) -> list[str]:
    """The report's metric blocks as lines (rich markup in them only when `colour`)."""
    mark = (lambda text, style: f"[{style}]{escape(text)}[/]") if colour else (lambda text, _style: text)
    safe = escape if colour else (lambda text: text)
    width = max((len(g.name) for g in report.groups), default=0)
    lines: list[str] = []
    for m in METRICS:
        better = "higher" if m.higher_is_better else "lower"
        lines.append(mark(f"{m.label} ({report.confidence:.0%}: {m.method}; {better} is better)", "bold"))
        lo, hi = scale(report, m)
        for g in report.groups:
            f = report.figures[g.name][m.name]
            name = safe(g.name.ljust(width))
            tail = "  baseline" if g.name == report.baseline else ""
            if f.interval is None:
                lines.append(f"  {name}  |{' ' * WIDTH}|  no data  n={f.n}{tail}")
                continue
            i = f.interval
            bar = mark(_bar(i, lo, hi), "cyan")
            figure = f"{format_value(m, i.estimate)}  [{format_value(m, i.low)}, {format_value(m, i.high)}]"
            lines.append(f"  {name}  |{bar}|  {figure}  n={f.n}{tail}")
        for c in report.comparisons:
            v = c.verdicts[m.name]
            d = c.differences[m.name]
            if d is not None:
                detail = f" ({format_difference(m, d)})"
            else:
                ns = [report.figures[name][m.name].n for name in (c.group, c.baseline)]
                detail = f" (n={ns[0]} and {ns[1]}; each needs {max(report.min_sample, _LEAST[m.kind])})"
            lines.append(f"  {safe(c.group)} vs {safe(c.baseline)}: {mark(v, _COLOUR[v])}{safe(detail)}")
        lines.append("")
    return lines
