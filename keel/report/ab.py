"""The A/B report: groups of executions compared with a baseline, metric by metric (pure: no I/O).

The records layer (`keel.records.ab.ABStore.ab_report`) reads one `GroupSample` per group and calls
`build_ab_report`; the CLI, the server route and the library all show the `ABReport` it returns.

Metrics (each group's figure with its 95 % interval, then candidate minus baseline with its interval):

| metric            | per group                    | n                       | difference   | better when |
|-------------------|------------------------------|-------------------------|--------------|-------------|
| success rate      | Wilson                       | finished runs           | Newcombe     | higher      |
| duration          | mean, Student t (seconds)    | finished runs timed     | Welch's t    | lower       |
| cost per run      | mean, Student t (USD)        | finished runs           | Welch's t    | lower       |
| tool failure rate | Wilson, per tool call        | tool calls that ran     | Newcombe     | lower       |
| feedback score    | mean, Student t, in [-1, 1]  | scored finished runs    | Welch's t    | higher      |

A metric whose n is below `min_sample` in either group (or below 2, which an interval needs) reads "not
enough data". Several candidates are each compared with the baseline on their own (no correction for
multiple comparisons: with many arms, read a lone "better" or "worse" with care).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from keel.report.stats import CONFIDENCE, Interval, Verdict, mean_interval, newcombe, verdict, welch, wilson

__all__ = ["GroupSample", "Metric", "MetricFigure", "Comparison", "ABReport", "METRICS", "build_ab_report"]

MetricName = Literal["success_rate", "duration_s", "cost_per_run", "tool_failure_rate", "feedback_score"]


@dataclass(frozen=True, slots=True)
class Metric:
    name: MetricName
    label: str
    kind: Literal["rate", "mean"]
    higher_is_better: bool
    unit: str
    method: str


METRICS: tuple[Metric, ...] = (
    Metric("success_rate", "success rate", "rate", True, "", "Wilson; difference by Newcombe"),
    Metric("duration_s", "duration", "mean", False, "s", "Student t; difference by Welch's t"),
    Metric("cost_per_run", "cost per run", "mean", False, "USD", "Student t; difference by Welch's t"),
    Metric("tool_failure_rate", "tool failure rate", "rate", False, "", "Wilson per tool call; Newcombe"),
    Metric("feedback_score", "feedback score", "mean", True, "", "Student t; difference by Welch's t"),
)
"""The metrics in report order, with which way is better and how their intervals are computed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupSample:
    """What the records hold for one group in the window: the input of `build_ab_report`."""

    name: str
    """The rollout arm, or the version when the executions ran without a rollout."""
    kind: Literal["arm", "version"]
    executions: int
    """Every execution started in the window, finished or not."""
    unfinished: int
    """Of those, still running, awaiting approval or interrupted: left out of every metric."""
    succeeded: int
    finished: int
    durations_s: tuple[float, ...] = ()
    """One per finished execution that recorded its duration."""
    costs: tuple[float, ...] = ()
    """One per finished execution (USD)."""
    tool_calls: int = 0
    """Tool calls that ran (ok and failed) in the finished executions."""
    tool_failures: int = 0
    feedback_scores: tuple[float, ...] = ()
    """One per finished execution with feedback: the mean of its users' scores."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricFigure:
    """One group's figure on one metric: None when its n is below 2 (no interval can be computed)."""

    n: int
    interval: Interval | None
    successes: int | None = None
    """For rates: the k of k/n."""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n": self.n}
        if self.successes is not None:
            out["k"] = self.successes
        out.update(
            self.interval.as_dict() if self.interval else {"estimate": None, "low": None, "high": None}
        )
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    """A candidate group against the baseline: per metric, candidate minus baseline and its verdict."""

    group: str
    baseline: str
    differences: dict[str, Interval | None]
    verdicts: dict[str, Verdict]
    summary: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "baseline": self.baseline,
            "metrics": {
                m.name: {
                    "verdict": self.verdicts[m.name],
                    "difference": None if (d := self.differences[m.name]) is None else d.as_dict(),
                }
                for m in METRICS
            },
            "summary": self.summary,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ABReport:
    """The report: every group's figures, each candidate compared with the baseline, one overall sentence."""

    since: datetime
    until: datetime
    min_sample: int
    confidence: float
    baseline: str | None
    baseline_source: Literal["asked", "rollout", "most executions"] | None
    groups: list[GroupSample]
    figures: dict[str, dict[str, MetricFigure]]
    """group name -> metric name -> figure."""
    comparisons: list[Comparison]
    verdict: str
    excluded_unfinished: int = 0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "confidence": self.confidence,
            "min_sample": self.min_sample,
            "baseline": self.baseline,
            "baseline_source": self.baseline_source,
            "excluded_unfinished": self.excluded_unfinished,
            "metrics": {
                m.name: {
                    "label": m.label,
                    "unit": m.unit,
                    "method": m.method,
                    "higher_is_better": m.higher_is_better,
                }
                for m in METRICS
            },
            "groups": [
                {
                    "group": g.name,
                    "kind": g.kind,
                    "executions": g.executions,
                    "finished": g.finished,
                    "unfinished": g.unfinished,
                    "metrics": {name: f.as_dict() for name, f in self.figures[g.name].items()},
                }
                for g in self.groups
            ],
            "comparisons": [c.as_dict() for c in self.comparisons],
            "verdict": self.verdict,
            "notes": list(self.notes),
        }


def _figure(g: GroupSample, m: Metric, confidence: float) -> MetricFigure:
    if m.kind == "rate":
        k, n = (g.succeeded, g.finished) if m.name == "success_rate" else (g.tool_failures, g.tool_calls)
        return MetricFigure(n=n, successes=k, interval=wilson(k, n, confidence) if n > 0 else None)
    values = _values(g, m.name)
    return MetricFigure(
        n=len(values), interval=mean_interval(values, confidence) if len(values) >= 2 else None
    )


def _values(g: GroupSample, name: str) -> Sequence[float]:
    return {"duration_s": g.durations_s, "cost_per_run": g.costs, "feedback_score": g.feedback_scores}[name]


def _difference(
    c: GroupSample, b: GroupSample, m: Metric, min_sample: int, confidence: float
) -> Interval | None:
    if m.kind == "rate":
        (kc, nc), (kb, nb) = (
            ((c.succeeded, c.finished), (b.succeeded, b.finished))
            if m.name == "success_rate"
            else ((c.tool_failures, c.tool_calls), (b.tool_failures, b.tool_calls))
        )
        if min(nc, nb) < max(min_sample, 1):
            return None
        return newcombe(kc, nc, kb, nb, confidence)
    vc, vb = _values(c, m.name), _values(b, m.name)
    if min(len(vc), len(vb)) < max(min_sample, 2):
        return None
    return welch(vc, vb, confidence)


def _listing(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _summary(c: GroupSample, b: GroupSample, verdicts: dict[str, Verdict], min_sample: int) -> str:
    label = {m.name: m.label for m in METRICS}
    by: dict[Verdict, list[str]] = {}
    for m in METRICS:
        by.setdefault(verdicts[m.name], []).append(label[m.name])
    if len(by.get("not enough data", [])) == len(METRICS):
        return (
            f"Not enough data to compare {c.name} with {b.name}: each metric needs at least {min_sample} "
            f"observations per group ({c.name} has {c.finished} finished runs, {b.name} {b.finished})."
        )
    parts = []
    if worse := by.get("worse"):
        parts.append(f"{c.name} is worse than {b.name} on {_listing(worse)}")
    if better := by.get("better"):
        parts.append(f"{'better' if worse else f'{c.name} is better than {b.name}'} on {_listing(better)}")
    if same := by.get("no difference detected"):
        lead = "no difference detected" if parts else f"No difference detected between {c.name} and {b.name}"
        parts.append(f"{lead} on {_listing(same)}")
    if missing := by.get("not enough data"):
        parts.append(f"not enough data on {_listing(missing)}")
    return "; ".join(parts) + "."


def _pick_baseline(
    groups: list[GroupSample], asked: str | None, rollout_stable: str | None
) -> tuple[GroupSample | None, Literal["asked", "rollout", "most executions"] | None]:
    by_name = {g.name: g for g in groups}
    if asked is not None:
        if asked not in by_name:
            known = ", ".join(sorted(by_name)) or "none"
            raise KeyError(f"no executions of baseline {asked!r} in the window (groups: {known})")
        return by_name[asked], "asked"
    if rollout_stable is not None and rollout_stable in by_name:
        return by_name[rollout_stable], "rollout"
    if not groups:
        return None, None
    return groups[0], "most executions"  # sorted by size, then name


def build_ab_report(
    groups: Sequence[GroupSample],
    *,
    since: datetime,
    until: datetime,
    min_sample: int,
    baseline: str | None = None,
    rollout_stable: str | None = None,
    confidence: float = CONFIDENCE,
) -> ABReport:
    """Compare every group with the baseline: `baseline` when given (KeyError when it has no executions in
    the window), else `rollout_stable` (the rollout's stable arm) when it ran, else the group with the most
    executions (ties: the first name). `min_sample` (>= 1): the observations each group needs on a metric
    before that metric gets a verdict."""
    if min_sample < 1:
        raise ValueError(f"the minimum sample must be at least 1, got {min_sample}")
    ordered = sorted(groups, key=lambda g: (-g.executions, g.name))
    base, source = _pick_baseline(ordered, baseline, rollout_stable)
    if base is not None:  # the baseline first, then the others by size
        ordered = [base, *(g for g in ordered if g is not base)]
    figures = {g.name: {m.name: _figure(g, m, confidence) for m in METRICS} for g in ordered}
    comparisons = []
    for g in ordered:
        if base is None or g is base:
            continue
        diffs = {m.name: _difference(g, base, m, min_sample, confidence) for m in METRICS}
        verdicts = {m.name: verdict(diffs[m.name], higher_is_better=m.higher_is_better) for m in METRICS}
        comparisons.append(
            Comparison(
                group=g.name,
                baseline=base.name,
                differences=diffs,
                verdicts=verdicts,
                summary=_summary(g, base, verdicts, min_sample),
            )
        )
    unfinished = sum(g.unfinished for g in ordered)
    notes = [
        "only finished executions (succeeded, terminated, failed) count; "
        f"{unfinished} running, awaiting approval or interrupted left out"
    ]
    if len(comparisons) > 1:
        notes.append(
            "each group is compared with the baseline on its own (no multiple-comparison correction)"
        )
    if not ordered:
        overall = f"No executions started since {since.isoformat(timespec='seconds')}."
    elif not comparisons:
        overall = f"Only one group ({ordered[0].name}) ran in the window: nothing to compare it with."
    else:
        overall = " ".join(c.summary for c in comparisons)
    return ABReport(
        since=since,
        until=until,
        min_sample=min_sample,
        confidence=confidence,
        baseline=base.name if base else None,
        baseline_source=source,
        groups=ordered,
        figures=figures,
        comparisons=comparisons,
        verdict=overall,
        excluded_unfinished=unfinished,
        notes=notes,
    )
