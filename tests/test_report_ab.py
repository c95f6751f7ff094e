"""The A/B report: groups of executions (the rollout arm, else the version) compared with a baseline on
success rate, duration, cost per run, tool failure rate and feedback score. The figures on a synthetic set
of executions equal the ones computed here by hand from the formulas; a metric with too few observations
reads "not enough data"; `keel report ab --json` has the documented shape and the piped text is plain."""

from __future__ import annotations

import itertools
import json
import math
import struct
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from keel.cli import app
from keel.records import Execution, Records, utcnow
from keel.report import GroupSample, build_ab_report
from keel.report.stats import mean_interval, newcombe, t_quantile, welch, wilson
from keel.settings import Settings

Z = 1.959963984540054  # the 97.5th percentile of the standard normal (tables: 1.96)
T98 = 1.984467  # Student t, 97.5th percentile, 98 degrees of freedom (tables: 1.9845)
T2 = 4.302653  # ... 2 degrees of freedom (tables: 4.3027)


def wilson_by_hand(k: int, n: int) -> tuple[float, float]:
    """(p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)."""
    p = k / n
    centre = p + Z * Z / (2 * n)
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return (centre - half) / (1 + Z * Z / n), (centre + half) / (1 + Z * Z / n)


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-9)


# -- the statistics, from their formulas ----------------------------------------------------------


def test_wilson_45_of_50_is_the_formula() -> None:
    low, high = wilson_by_hand(45, 50)
    got = wilson(45, 50)
    assert got.estimate == 0.9 and close(got.low, low) and close(got.high, high)
    assert (round(low, 4), round(high, 4)) == (0.7864, 0.9565)  # as published Wilson tables give it


def test_student_t_quantiles_match_the_tables() -> None:
    for df, table in ((1, 12.7062), (2, 4.3027), (8, 2.3060), (30, 2.0423), (98, 1.9845), (1000, 1.9623)):
        assert round(t_quantile(0.975, df), 4) == table
    assert close(t_quantile(0.025, 8), -t_quantile(0.975, 8))


def test_welch_on_equal_spreads_is_the_pooled_t_interval() -> None:
    a, b = [2.0, 3, 4, 5, 6] * 10, [1.0, 2, 3, 4, 5] * 10
    # both variances 100/49, n = 50 each: se = sqrt(2 * 100/49 / 50) = 2/7, Welch's df = 2 * 49 = 98
    got = welch(a, b)
    assert close(got.estimate, 1.0)
    assert close(got.low, 1 - T98 * 2 / 7) and close(got.high, 1 + T98 * 2 / 7)


@given(
    n=st.integers(min_value=1, max_value=5000),
    k_share=st.floats(min_value=0, max_value=1),
    times=st.integers(min_value=2, max_value=50),
)
def test_wilson_is_within_0_1_contains_the_rate_and_narrows_with_n(
    n: int, k_share: float, times: int
) -> None:
    k = round(k_share * n)
    got = wilson(k, n)
    assert 0.0 <= got.low <= got.estimate <= got.high <= 1.0
    assert got.estimate == k / n
    more = wilson(k * times, n * times)  # the same rate seen over `times` as many trials
    assert more.high - more.low < got.high - got.low


_COUNTS = st.integers(min_value=1, max_value=2000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n)))


@given(a=_COUNTS, b=_COUNTS)
def test_a_rate_difference_contains_its_estimate_and_turns_over_with_the_groups(a, b) -> None:
    d, back = newcombe(*a, *b), newcombe(*b, *a)
    assert -1.0 <= d.low <= d.estimate <= d.high <= 1.0
    assert close(d.low, -back.high) and close(d.high, -back.low)


@given(
    a=st.lists(st.floats(min_value=0, max_value=1e4), min_size=2, max_size=40),
    b=st.lists(st.floats(min_value=0, max_value=1e4), min_size=2, max_size=40),
)
def test_welch_contains_the_difference_of_means_and_turns_over_with_the_groups(a, b) -> None:
    d, back = welch(a, b), welch(b, a)
    assert d.low <= d.estimate <= d.high
    assert math.isclose(d.low, -back.high, rel_tol=1e-9, abs_tol=1e-9)


# -- the report over synthetic executions ---------------------------------------------------------

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _ex(
    group: str | None, status: str, now: datetime, *, version: str = "desk@v2", **kw: object
) -> Execution:
    eid = uuid.uuid4().hex
    return Execution(
        execution_id=eid,
        thread_id=f"ab-{eid}",
        user_id=f"u-{eid[:8]}",
        role="user",
        tenant="t",
        version=version,
        task="x",
        arm=group,
        status=status,  # type: ignore[arg-type]
        started_at=kw.pop("started_at", now - timedelta(hours=1)),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


async def seed(records: Records, now: datetime = NOW) -> None:
    """stable (arm): 50 finished, 45 succeeded, durations 1..5 s, 102 tool calls of which 2 failed, three
    scored runs (1; 0 and 1 from two users; -1), plus 3 unfinished runs and one outside the window.
    canary (arm): 50 finished (30 succeeded, 15 terminated, 5 failed), durations 2..6 s, 60 tool calls of
    which 10 failed, one scored run. desk@v1 (no arm): 3 finished runs. Every cost is $0.01."""
    rows: list[Execution] = []
    for i in range(50):
        status = "succeeded" if i < 45 else "failed"
        rows.append(
            _ex(
                "stable",
                status,
                now,
                duration_ms=(i % 5 + 1) * 1000,
                cost="0.01",
                tools_used=["a", "b"],
                tools_failed=["c"] if i < 2 else [],
            )
        )
    for i in range(50):
        status = "succeeded" if i < 30 else "terminated" if i < 45 else "failed"
        rows.append(
            _ex(
                "canary",
                status,
                now,
                duration_ms=(i % 5 + 2) * 1000,
                cost="0.01",
                tools_used=["a"],
                tools_failed=["c"] if i < 10 else [],
            )
        )
    for status in ("running", "awaiting_approval", "interrupted"):
        rows.append(_ex("stable", status, now))
    old = _ex("stable", "succeeded", now, duration_ms=999_000, cost="5", started_at=now - timedelta(days=8))
    rows.append(old)
    rows += [_ex(None, "succeeded", now, version="desk@v1", duration_ms=1000, cost="0.01") for _ in range(3)]
    async with records.transaction() as conn:
        for row in rows:
            await records.start_execution(row, conn=conn)
    stable = [r.execution_id for r in rows if r.arm == "stable" and r.status != "running"]
    scores = [
        (stable[0], "u1", 1),
        (stable[1], "u1", 0),
        (stable[1], "u2", 1),
        (stable[2], "u1", -1),
        (rows[50].execution_id, "u1", 1),
        (rows[-4].execution_id, "u1", -1),  # the unfinished one
        (old.execution_id, "u1", -1),
    ]  # outside the window
    running = next(r for r in rows if r.status == "running")
    scores.append((running.execution_id, "u1", -1))
    for eid, user, score in scores:
        await records.add_feedback(
            execution_id=eid,
            thread_id=f"ab-{eid}",
            user_id=user,
            role="user",
            score=score,
            comment=None,
            version="desk@v2",
        )


_SLOTS = itertools.count()


@pytest.fixture
async def seeded(settings: Settings):
    """Records with the synthetic set, and the end of its window: each use gets its own 20 days in the
    past (the PostgreSQL database is shared by the session's tests; later runs start after NOW)."""
    r = Records.from_url(settings.records_url)
    await r.setup()
    now = NOW - timedelta(days=20 * next(_SLOTS))
    await seed(r, now)
    yield r, now
    await r.close()


async def test_figures_equal_the_hand_computation(seeded: tuple[Records, datetime]) -> None:
    records, now = seeded
    report = await records.ab_report(since=timedelta(days=7), until=now, min_sample=30)
    assert report.baseline == "stable" and report.baseline_source == "most executions"  # 53 runs against 50
    assert [g.name for g in report.groups] == ["stable", "canary", "desk@v1"]
    stable, canary = report.figures["stable"], report.figures["canary"]
    assert report.excluded_unfinished == 3
    assert [g.kind for g in report.groups] == ["arm", "arm", "version"]

    # success rate: Wilson per group, Newcombe for canary - stable
    assert (stable["success_rate"].successes, stable["success_rate"].n) == (45, 50)
    for fig, k in ((stable, 45), (canary, 30)):
        low, high = wilson_by_hand(k, 50)
        assert close(fig["success_rate"].interval.low, low) and close(fig["success_rate"].interval.high, high)
    (ls, hs), (lc, hc) = wilson_by_hand(45, 50), wilson_by_hand(30, 50)
    d = 0.6 - 0.9
    low = d - math.sqrt((0.6 - lc) ** 2 + (hs - 0.9) ** 2)
    high = d + math.sqrt((hc - 0.6) ** 2 + (0.9 - ls) ** 2)
    cmp = report.comparisons[0]
    assert cmp.group == "canary" and cmp.baseline == "stable"
    got = cmp.differences["success_rate"]
    assert close(got.estimate, d) and close(got.low, low) and close(got.high, high) and high < 0
    assert cmp.verdicts["success_rate"] == "worse"

    # duration: means 3 s and 4 s, each variance 100/49 over n = 50: t interval and Welch's
    t49 = t_quantile(0.975, 49)  # the per-group interval has n - 1 = 49 degrees of freedom (tables: 2.0096)
    assert round(t49, 4) == 2.0096
    assert close(stable["duration_s"].interval.low, 3 - t49 * math.sqrt(100 / 49 / 50))
    assert close(cmp.differences["duration_s"].low, 1 - T98 * 2 / 7)
    assert close(cmp.differences["duration_s"].high, 1 + T98 * 2 / 7)
    assert cmp.verdicts["duration_s"] == "worse"

    # cost: $0.01 every run in both groups, no spread: a zero-width difference at 0
    assert close(stable["cost_per_run"].interval.estimate, 0.01) and stable["cost_per_run"].n == 50
    assert cmp.verdicts["cost_per_run"] == "no difference detected"

    # tool failure rate, per call: stable 2 failed of 100 ok + 2 failed; canary 10 of 50 + 10
    assert (stable["tool_failure_rate"].successes, stable["tool_failure_rate"].n) == (2, 102)
    assert (canary["tool_failure_rate"].successes, canary["tool_failure_rate"].n) == (10, 60)
    (ls, hs), (lc, hc) = wilson_by_hand(2, 102), wilson_by_hand(10, 60)
    ps, pc = 2 / 102, 10 / 60
    assert close(
        cmp.differences["tool_failure_rate"].low, pc - ps - math.sqrt((pc - lc) ** 2 + (hs - ps) ** 2)
    )
    assert cmp.verdicts["tool_failure_rate"] == "worse"

    # feedback: per scored finished run the mean of its users' scores: 1, (0 + 1) / 2, -1; n = 3 < 30
    fb = stable["feedback_score"]
    mean = (1 + 0.5 - 1) / 3
    sd = math.sqrt(((1 - mean) ** 2 + (0.5 - mean) ** 2 + (-1 - mean) ** 2) / 2)
    assert fb.n == 3 and close(fb.interval.estimate, mean)
    assert close(fb.interval.high, mean + T2 * sd / math.sqrt(3))
    assert canary["feedback_score"].n == 1 and canary["feedback_score"].interval is None
    assert cmp.verdicts["feedback_score"] == "not enough data"

    assert cmp.summary == (
        "canary is worse than stable on success rate, duration and tool failure rate; no difference detected "
        "on cost per run; not enough data on feedback score."
    )
    version = report.comparisons[1]
    assert version.group == "desk@v1" and set(version.verdicts.values()) == {"not enough data"}
    assert version.summary.startswith("Not enough data to compare desk@v1 with stable")
    assert report.verdict == f"{cmp.summary} {version.summary}"


async def test_minimum_sample_and_baseline_are_the_callers(seeded: tuple[Records, datetime]) -> None:
    records, now = seeded
    report = await records.ab_report(since=timedelta(days=7), until=now, min_sample=51, baseline="canary")
    assert report.baseline == "canary" and report.baseline_source == "asked"
    stable = report.comparisons[0]
    assert stable.group == "stable"
    # 50 finished runs per group: below 51, every run-counted metric is "not enough data"; tool calls
    # (102 and 60) are enough, and stable has the lower failure rate
    assert stable.verdicts["success_rate"] == "not enough data"
    assert stable.verdicts["duration_s"] == "not enough data"
    assert stable.verdicts["tool_failure_rate"] == "better"
    with pytest.raises(KeyError, match="no executions of baseline 'nope'"):
        await records.ab_report(since=timedelta(days=7), until=now, baseline="nope")
    rollout = await records.ab_report(since=timedelta(days=7), until=now, rollout_stable="canary")
    assert rollout.baseline == "canary" and rollout.baseline_source == "rollout"


def test_no_group_or_one_group_has_nothing_to_compare() -> None:
    since, until = NOW - timedelta(days=7), NOW
    assert build_ab_report([], since=since, until=until, min_sample=30).verdict.startswith("No executions")
    one = GroupSample(name="v1", kind="version", executions=3, unfinished=0, succeeded=3, finished=3)
    report = build_ab_report([one], since=since, until=until, min_sample=30)
    assert report.baseline == "v1" and report.comparisons == [] and "nothing to compare" in report.verdict
    assert mean_interval([1.0, 1.0]).low == 1.0 and newcombe(0, 5, 0, 5).estimate == 0


# -- the command ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import asyncio

    home = tmp_path_factory.mktemp("abreport")

    async def go() -> None:
        r = Records.from_url(Settings(home=home).records_url)
        await r.setup()
        await seed(r, utcnow())  # the command reads back from now
        await r.close()

    asyncio.run(go())
    return home


def _cli(home: Path, *args: str):
    env = {"KEEL_HOME": str(home), "KEEL_MEMORY_ENABLED": "false"}
    return CliRunner().invoke(app, ["report", "ab", *args], env=env, prog_name="keel")


def test_cli_json_shape(cli_home: Path) -> None:
    res = _cli(cli_home, "--min-sample", "30", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert set(doc) == {
        "since",
        "until",
        "confidence",
        "min_sample",
        "baseline",
        "baseline_source",
        "excluded_unfinished",
        "metrics",
        "groups",
        "comparisons",
        "verdict",
        "notes",
    }
    assert doc["baseline"] == "stable" and doc["min_sample"] == 30 and doc["confidence"] == 0.95
    metrics = ["success_rate", "duration_s", "cost_per_run", "tool_failure_rate", "feedback_score"]
    assert list(doc["metrics"]) == metrics
    stable = doc["groups"][0]
    assert stable["group"] == "stable" and stable["kind"] == "arm" and stable["unfinished"] == 3
    assert stable["metrics"]["success_rate"] == {
        "n": 50,
        "k": 45,
        "estimate": 0.9,
        "low": wilson(45, 50).low,
        "high": wilson(45, 50).high,
    }
    canary = doc["comparisons"][0]
    assert canary["group"] == "canary" and canary["baseline"] == "stable"
    assert canary["metrics"]["success_rate"]["verdict"] == "worse"
    assert canary["metrics"]["feedback_score"] == {"verdict": "not enough data", "difference": None}
    assert set(canary["metrics"]["duration_s"]["difference"]) == {"estimate", "low", "high"}
    assert doc["verdict"].startswith("canary is worse than stable")


def test_cli_piped_text_is_plain_and_whole(cli_home: Path) -> None:
    res = _cli(cli_home)
    assert res.exit_code == 0, res.output
    text = res.stdout
    assert "\x1b[" not in text and "[/" not in text  # no colour codes, no rich markup left in
    lines = text.splitlines()
    assert "baseline:        stable (most executions)" in lines
    assert any(line.startswith("note: only finished executions") and "3 running" in line for line in lines)
    bar = next(line for line in lines if line.startswith("  canary   |"))
    assert bar.endswith("60.0%  [46.2%, 72.4%]  n=50")
    assert "  canary vs stable: worse (-30.0 pp [-44.9, -13.2])" in lines
    assert "  desk@v1 vs stable: not enough data (n=3 and 50; each needs 30)" in lines
    assert lines[-1].startswith("verdict: canary is worse than stable on success rate")


def test_cli_errors_are_one_line(cli_home: Path) -> None:
    res = _cli(cli_home, "--baseline", "nope")
    assert res.exit_code == 1 and "no executions of baseline 'nope'" in res.stderr
    assert _cli(cli_home, "--since", "soon").exit_code == 1
    assert _cli(cli_home, "--min-sample", "0").exit_code == 2


def _pixels(png: bytes) -> list[list[tuple[int, int, int]]]:
    """Decode the PNGs keel writes (8-bit RGB, one IDAT, filter 0 on every scanline)."""
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    start = png.index(b"IDAT") + 4
    size = struct.unpack(">I", png[start - 8 : start - 4])[0]
    raw = zlib.decompress(png[start : start + size])
    stride = 1 + 3 * width
    rows = [raw[y * stride + 1 : (y + 1) * stride] for y in range(height)]
    assert all(raw[y * stride] == 0 for y in range(height))
    return [[tuple(r[3 * x : 3 * x + 3]) for x in range(width)] for r in rows]


def test_cli_png_draws_each_bar_to_its_estimate(cli_home: Path, tmp_path: Path) -> None:
    from keel.report.png import BAR, BAR_W, BASE

    res = _cli(cli_home, "--png", str(tmp_path / "ab.png"))
    assert res.exit_code == 0 and res.stdout.splitlines()[-1] == f"chart: {tmp_path / 'ab.png'}"
    image = _pixels((tmp_path / "ab.png").read_bytes())
    # the first bar of each colour is the success rate's: stable (the baseline, grey) 45/50, canary 30/50
    for colour, rate in ((BASE, 0.9), (BAR, 0.6)):
        row = next(r for r in image if colour in r)
        xs = [x for x, pixel in enumerate(row) if pixel == colour]
        assert xs[-1] - xs[0] + 1 == round(rate * BAR_W)
    assert _cli(cli_home, "--png", str(tmp_path / "no" / "ab.png")).exit_code == 1
