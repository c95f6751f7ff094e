"""The statistics of the A/B report: pure functions, no I/O, stdlib only.

- Rates (success, tool failure): the Wilson score interval of each group; the difference between two groups
  by Newcombe's hybrid score interval (method 10 of Newcombe 1998), which is built from the two Wilson
  intervals and, unlike the Wald interval, behaves near 0 and 1 and with small samples.
- Means (duration, cost per run, feedback score): a Student t interval of each group's mean; the difference
  between two groups by Welch's t interval (unequal variances, Welch-Satterthwaite degrees of freedom).
  Deterministic (no resampling): the same data always gives the same report.
- `verdict`: a difference's interval above zero, below zero or across it, read against whether more is
  better, or "not enough data" when either group has fewer observations than the minimum asked for.

Every interval is two-sided at 95 % unless `confidence` says otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

__all__ = [
    "Interval",
    "Verdict",
    "VERDICTS",
    "CONFIDENCE",
    "wilson",
    "newcombe",
    "mean_interval",
    "welch",
    "t_quantile",
    "t_cdf",
    "verdict",
]

CONFIDENCE = 0.95
Verdict = Literal["better", "worse", "no difference detected", "not enough data"]
VERDICTS: tuple[Verdict, ...] = ("better", "worse", "no difference detected", "not enough data")


@dataclass(frozen=True, slots=True, kw_only=True)
class Interval:
    """A point estimate and its confidence interval [low, high]."""

    estimate: float
    low: float
    high: float

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def as_dict(self) -> dict[str, float]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high}


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson(k: int, n: int, confidence: float = CONFIDENCE) -> Interval:
    """The Wilson score interval of `k` successes in `n` trials (n > 0, 0 <= k <= n)."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"wilson needs 0 <= k <= n and n > 0, got k={k}, n={n}")
    z = _z(confidence)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # Clamped: at k = 0 or k = n the exact bound is 0 or 1, which rounding can miss by an ulp.
    return Interval(estimate=p, low=max(0.0, min(p, centre - half)), high=min(1.0, max(p, centre + half)))


def newcombe(k1: int, n1: int, k2: int, n2: int, confidence: float = CONFIDENCE) -> Interval:
    """The interval of p1 - p2 (group 1's rate minus group 2's) by Newcombe's hybrid score method."""
    a, b = wilson(k1, n1, confidence), wilson(k2, n2, confidence)
    d = a.estimate - b.estimate
    low = d - math.sqrt((a.estimate - a.low) ** 2 + (b.high - b.estimate) ** 2)
    high = d + math.sqrt((a.high - a.estimate) ** 2 + (b.estimate - b.low) ** 2)
    return Interval(estimate=d, low=low, high=high)


def _mean_var(values: Sequence[float]) -> tuple[float, float]:
    n = len(values)
    mean = math.fsum(values) / n
    return mean, math.fsum((v - mean) ** 2 for v in values) / (n - 1)


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """The mean of `values` (at least 2) and its Student t interval (n - 1 degrees of freedom)."""
    n = len(values)
    if n < 2:
        raise ValueError(f"a mean's interval needs at least 2 values, got {n}")
    mean, var = _mean_var(values)
    half = t_quantile(0.5 + confidence / 2, n - 1) * math.sqrt(var / n)
    return Interval(estimate=mean, low=mean - half, high=mean + half)


def welch(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """The interval of mean(a) - mean(b) by Welch's t (each at least 2 values). Two groups without any
    spread give a zero-width interval at the difference of their means."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"Welch's t needs at least 2 values per group, got {len(a)} and {len(b)}")
    (ma, va), (mb, vb) = _mean_var(a), _mean_var(b)
    sa, sb = va / len(a), vb / len(b)
    d = ma - mb
    se = math.sqrt(sa + sb)
    if se == 0:
        return Interval(estimate=d, low=d, high=d)
    ra, rb = sa / max(sa, sb), sb / max(sa, sb)  # scaled: squares of tiny variances must not underflow to 0
    df = (ra + rb) ** 2 / (ra * ra / (len(a) - 1) + rb * rb / (len(b) - 1))
    half = t_quantile(0.5 + confidence / 2, df) * se
    return Interval(estimate=d, low=d - half, high=d + half)


def verdict(difference: Interval | None, *, higher_is_better: bool) -> Verdict:
    """The plain reading of a candidate-minus-baseline interval (None: not enough data to compute one)."""
    if difference is None:
        return "not enough data"
    if not difference.excludes_zero():
        return "no difference detected"
    return "better" if (difference.low > 0) == higher_is_better else "worse"


# -- Student's t, without scipy ---------------------------------------------------------------------


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` (> 0, not necessarily whole) degrees of freedom."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    tail = 0.5 * _betai(df / 2, 0.5, df / (df + t * t))
    return 1 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The t with P(T <= t) = p (0 < p < 1): bisection on `t_cdf` to 1e-12."""
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        low, high = high, high * 2
    while high - low > 1e-12 * max(1.0, high):
        mid = (low + high) / 2
        low, high = (mid, high) if t_cdf(mid, df) < p else (low, mid)
    return (low + high) / 2


def _betai(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b) (Numerical Recipes' continued fraction)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    ln = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1) / (a + b + 2):
        return math.exp(ln) * _betacf(a, b, x) / a
    return 1 - math.exp(ln) * _betacf(b, a, 1 - x) / b


def _betacf(a: float, b: float, x: float) -> float:
    tiny, qab, qap, qam = 1e-300, a + b, a + 1, a - 1
    c, d = 1.0, 1 - qab * x / qap
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for num in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1 + num * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1) < 1e-15:
            break
    return h
