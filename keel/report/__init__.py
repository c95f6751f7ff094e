"""Reports over the records: the A/B report (`keel report ab`), its statistics and its terminal chart."""

from keel.report.ab import METRICS, ABReport, Comparison, GroupSample, MetricFigure, build_ab_report
from keel.report.stats import Interval, Verdict

__all__ = [
    "ABReport",
    "Comparison",
    "GroupSample",
    "Interval",
    "METRICS",
    "MetricFigure",
    "Verdict",
    "build_ab_report",
]
