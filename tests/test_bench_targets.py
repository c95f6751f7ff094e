"""The targets table of issue 14 (`make bench`, `make bench-quick`) from a recorded run, without running
anything: one row per target, met or missed computed from the files, a missing file "not measured", each
missed target with its written reason and its profile summary. No figure is timed here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import suite, targets_section
from benchmarks.targets import FILES, rows

RUN = json.loads((Path(__file__).parent / "data" / "bench_run.json").read_text(encoding="utf-8"))
"""One recorded run, small: each file of benchmarks/targets.py with just the figures the table reads."""

EXPECTED = {
    "postgres-vs-saver": True,  # 14 / 10 = 1.4x <= 1.5x
    "postgres-vs-middleware": False,  # 21 / 30 = 0.7x > 0.6x
    "embedded-vs-sqlite": True,  # 15 / 10 = 1.5x, on the bound
    "concurrency-throughput": True,  # 39 / 30 runs/s = 1.3x >= 1.2x
    "concurrency-p95": False,  # 2.5 s / 1.0 s = 2.5x > 2x
    "concurrency-store-errors": False,  # one run ended guard_unavailable
    "model-call-records": True,  # 1.0 on both profiles
    "model-call-redis": False,  # 1.2
    "tool-call-records": True,  # 1.0 and 0.5
    "tool-call-redis": True,  # 1.0
    "checkpoints": False,  # postgres 13 vs 11 is within + 2, embedded 14 vs 11 is not
    "no-global-lock": True,  # no sample saw a lock wait
    "cold-help": True,  # 0.3 s <= 0.4 s
    "cold-run": False,  # 1.6 s > 1.5 s
    "replicas": True,  # 1.25x >= 1.2x
}


def _folder(tmp_path: Path, leave_out: tuple[str, ...] = ()) -> Path:
    for name, content in RUN.items():
        if name not in leave_out:
            (tmp_path / f"{name}.json").write_text(json.dumps(content), encoding="utf-8")
    return tmp_path


def test_one_row_per_target_with_met_computed_from_the_recorded_files(tmp_path: Path) -> None:
    table = rows(targets_section.load(_folder(tmp_path)))
    assert [row.id for row in table] == list(EXPECTED), "every target of the issue, once, in its order"
    assert {row.id: row.met for row in table} == EXPECTED
    by_id = {row.id: row for row in table}
    assert (
        "1.40×" in by_id["postgres-vs-saver"].measured
        and "14.00 vs 10.00 ms/step" in by_id["postgres-vs-saver"].measured
    )
    assert by_id["concurrency-store-errors"].measured.startswith("1 (")
    assert "embedded 14 vs 11" in by_id["checkpoints"].measured


@pytest.mark.parametrize(
    ("leave_out", "unmeasured"),
    [
        (("replicas",), {"no-global-lock", "replicas"}),
        (("outcomes-postgres",), {"concurrency-store-errors"}),
        (("peer-postgres", "outcomes-postgres"), {"postgres-vs-saver", "postgres-vs-middleware",
                                                  "concurrency-throughput", "concurrency-p95",
                                                  "concurrency-store-errors"}),
    ],
)  # fmt: skip
def test_a_missing_file_leaves_its_targets_not_measured_never_met(tmp_path, leave_out, unmeasured) -> None:
    table = rows(targets_section.load(_folder(tmp_path, leave_out)))
    assert len(table) == len(EXPECTED)
    assert {row.id for row in table if row.met is None} == unmeasured
    for row in table:
        if row.id in unmeasured:
            assert row.measured.startswith("not measured")


def test_the_section_gives_each_missed_target_its_reason_and_profile(tmp_path: Path) -> None:
    notes = tmp_path / "notes.md"
    notes.write_text(
        "# Why\n\n<!-- a comment, left out -->\n\n"
        "## cold-run\nChroma is imported eagerly.\n<!-- ignored -->\n\n"
        "## model-call-redis\n\n## replicas\nNever shown: the target is met.\n",
        encoding="utf-8",
    )
    reasons = targets_section.notes(notes)
    assert reasons == {
        "cold-run": "Chroma is imported eagerly.",
        "replicas": "Never shown: the target is met.",
    }
    markdown = targets_section.section(targets_section.load(_folder(tmp_path)), reasons, ["a.json", "b.json"])
    table = [line for line in markdown.splitlines() if line.startswith("| `")]
    assert len(table) == len(EXPECTED)
    for line, (id, met) in zip(table, EXPECTED.items(), strict=True):
        assert line.startswith(f"| `{id}` |") and line.endswith("| met |" if met else "| **missed** |")
    assert "- `cold-run`: Chroma is imported eagerly. Profile: cold start (imports)." in markdown
    assert "- `model-call-redis`: not written yet" in markdown
    assert "Never shown" not in markdown
    assert "`chromadb` 0.90" in markdown and "`reserve (keel/budget/ledger.py:57)` 30.0" in markdown
    assert "Figures from: `a.json`, `b.json`." in markdown
    assert f"{sum(EXPECTED.values())} of {len(EXPECTED)} targets met." in markdown


def test_every_target_has_a_heading_in_the_notes_file() -> None:
    headings = {
        line[3:].strip() for line in targets_section.NOTES.read_text().splitlines() if line.startswith("## ")
    }
    assert headings == set(EXPECTED)


def test_the_suite_renders_from_recorded_files_and_writes_nothing(tmp_path: Path, capsys) -> None:
    folder = _folder(tmp_path)
    before = sorted(p.name for p in folder.iterdir())
    assert suite.main(["--from", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "## Targets of issue 14" in out and "## keel vs create_agent (shared peer harness)" in out
    assert "| 2 | 12.5 | " in out and "| 0 of 80 | none |" in out, (
        "the replicas table, a row per replica count"
    )
    assert sorted(p.name for p in folder.iterdir()) == before
    assert set(FILES) == set(RUN)


def test_quick_runs_every_step_reduced_and_only_keels_own_without_the_harness(tmp_path: Path) -> None:
    harness = tmp_path / "peer_bench.py"
    quick = {name: argv for name, argv, _env in suite.steps(tmp_path, harness, quick=True)}
    assert set(quick) == set(FILES) - {"outcomes-postgres"}, "every file of the table has its step"
    assert "--quick" in quick["peer-postgres"] and "concurrency" in " ".join(quick["peer-postgres"])
    assert quick["peer-postgres"][quick["peer-postgres"].index("--conc-runs") + 1] == "10"
    alone = [name for name, _argv, _env in suite.steps(tmp_path, None, quick=True)]
    assert alone == ["profile-postgres", "profile-embedded", "coldstart", "replicas"]
    assert all(str(tmp_path) in " ".join(argv) for argv in quick.values()), "outputs in the given folder"
