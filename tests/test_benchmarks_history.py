"""Benchmark results: `make bench-keel` writes no file; `--record` appends to the history and re-renders
RESULTS.md; the committed RESULTS.md is what the committed history renders to."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from benchmarks import __main__ as bench
from benchmarks.history import HISTORY, RESULTS, load, parse_section, render, render_section

SECTION = """## Fake benchmark

Two rows, one empty cell.

| what | ms | note |
|---|---|---|
| a | 1.0 | |
| b | 2.5 | fine |
"""


@pytest.fixture
def fake_benchmark(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("benchmarks._fake")
    module.run = lambda: SECTION  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "benchmarks._fake", module)
    monkeypatch.setitem(bench.BENCHMARKS, "fake", "benchmarks._fake")


def test_bench_without_record_writes_nothing(fake_benchmark: None, tmp_path: Path, capsys) -> None:
    history, results = tmp_path / "history.json", tmp_path / "RESULTS.md"
    tracked = {path: path.read_bytes() for path in (HISTORY, RESULTS)}
    bench.main(["fake"], history=history, results=results)
    assert "| b | 2.5 | fine |" in capsys.readouterr().out
    assert not history.exists() and not results.exists()
    assert {path: path.read_bytes() for path in tracked} == tracked


def test_record_appends_the_run_and_renders_results(fake_benchmark: None, tmp_path: Path) -> None:
    history, results = tmp_path / "history.json", tmp_path / "RESULTS.md"
    history.write_text(json.dumps(load(HISTORY)), encoding="utf-8")
    before = len(load(history))
    tracked = {path: path.read_bytes() for path in (HISTORY, RESULTS)}
    bench.main(["--record", "fake"], history=history, results=results)
    runs = load(history)
    assert len(runs) == before + 1, "one run appended, none lost"
    assert runs[:before] == load(HISTORY)
    last = runs[-1]
    assert last["command"] == ".venv/bin/python -m benchmarks --record fake"
    assert [s["benchmark"] for s in last["sections"]] == ["fake"]
    page = results.read_text(encoding="utf-8")
    assert SECTION.strip() in page and f"Recorded {last['recorded_at']} by `{last['command']}`." in page
    assert {path: path.read_bytes() for path in tracked} == tracked, "the temp paths, not the tracked files"


def test_sections_round_trip_through_the_history() -> None:
    assert render_section(parse_section("fake", SECTION)) == SECTION
    for run in load(HISTORY):
        for section in run["sections"]:
            assert parse_section(section["benchmark"], render_section(section)) == section


def test_results_page_is_rendered_from_the_history() -> None:
    assert RESULTS.read_text(encoding="utf-8") == render(load(HISTORY)), (
        "benchmarks/RESULTS.md is stale: .venv/bin/python -m benchmarks --render"
    )


def test_results_show_each_benchmark_latest_table_and_older_unmeasured_rows() -> None:
    runs = [
        {"recorded_at": "day 1", "command": "c1", "sections": [parse_section("fake", SECTION)]},
        {
            "recorded_at": "day 2",
            "command": "c2",
            "sections": [parse_section("fake", SECTION.replace("| a | 1.0 | |\n", ""))],
            "notes": "read me",
        },
    ]
    page = render(runs)
    assert "Recorded day 2 by `c2`." in page and "read me" in page and "c1`" not in page
    assert "| a | 1.0 | | day 1 |" in page, "a row the latest run did not measure keeps its own date"
