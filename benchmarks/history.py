"""Benchmark history: every recorded run in `history.json`, and `RESULTS.md` rendered from it.

`history.json` is a list of runs, oldest first: when (`recorded_at`, UTC), the command that made it, its
sections (one per benchmark: title, description, table columns and rows) and optional notes written by
whoever read the run. `RESULTS.md` shows, per benchmark, the table of its latest run and the command; the
rows that run did not measure (the postgres profile needs `KEEL_BENCH_PG_URL`) follow with their own date.

Only `record()` writes, called by `python -m benchmarks --record` (`make bench-keel-record`) and
`python -m benchmarks.suite --record` (`make bench`, `make bench-render`): `make bench-keel` and
`make bench-quick` print and leave every tracked file as it was.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["HISTORY", "RESULTS", "load", "parse_section", "record", "render", "render_section"]

HERE = Path(__file__).resolve().parent
HISTORY = HERE / "history.json"
RESULTS = HERE / "RESULTS.md"
ORDER = ("targets", "replicas", "peer", "overhead", "guards", "memory")

Run = dict[str, Any]


def parse_section(benchmark: str, markdown: str) -> dict[str, Any]:
    """A benchmark's markdown section (`## title`, description paragraphs, one table) as data."""
    lines = markdown.strip("\n").splitlines()
    if not lines or not lines[0].startswith("## "):
        raise ValueError(f"{benchmark}: a section starts with '## title', got {lines[:1]}")
    table = [i for i, line in enumerate(lines) if line.startswith("|")]
    if len(table) < 2 or table != list(range(table[0], table[-1] + 1)):
        raise ValueError(f"{benchmark}: a section holds exactly one table")
    cells = [_cells(lines[i]) for i in table]
    columns, rows = cells[0], cells[2:]
    if any(len(row) != len(columns) for row in rows):
        raise ValueError(f"{benchmark}: a row's cell count differs from the header's")
    section = {
        "benchmark": benchmark,
        "title": lines[0][3:].strip(),
        "description": "\n".join(lines[1 : table[0]]).strip("\n"),
        "columns": columns,
        "rows": rows,
    }
    after = "\n".join(lines[table[-1] + 1 :]).strip("\n")
    if after:
        section["after"] = after
    return section


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _row(cells: list[str]) -> str:
    return "|" + "|".join(f" {cell} " if cell else " " for cell in cells) + "|"


def _table(columns: list[str], rows: list[list[str]]) -> list[str]:
    return [_row(columns), "|" + "---|" * len(columns), *(_row(row) for row in rows)]


def render_section(section: dict[str, Any]) -> str:
    """The markdown a benchmark printed, back from its data (`parse_section` inverted)."""
    parts = [f"## {section['title']}", ""]
    if section["description"]:
        parts += [section["description"], ""]
    parts += _table(section["columns"], section["rows"])
    if "after" in section:
        parts += ["", section["after"]]
    return "\n".join(parts) + "\n"


def load(path: Path = HISTORY) -> list[Run]:
    """The recorded runs, oldest first ([] when there is no file yet)."""
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else []


def render(history: list[Run]) -> str:
    """RESULTS.md: per benchmark, its latest table and the command that made it."""
    out = [
        "# Benchmark results",
        "",
        "<!-- Rendered from benchmarks/history.json by `make bench` and `make bench-keel-record`; "
        "do not edit by hand. -->",
        "",
        "Each table is the latest recorded run of its benchmark, with the command that made it. "
        "`make bench` measures the targets of issue 14 (the shared peer harness with keel's plug-in, "
        "`profile_run`, cold start, replicas; files in `results/`) and records their table and the harness "
        "section; `make bench-quick` runs the same on reduced sizes and writes nothing. keel's own "
        "benchmarks: `make bench-keel` prints them, writing nothing; `make bench-keel-record` "
        "(`.venv/bin/python -m benchmarks --record [overhead] [guards] [memory]`) also appends the run to "
        "`history.json` and re-renders this page. Every run, with its date, command and notes, is in "
        "[history.json](history.json). Ratios, never timed assertions: the figures move with the machine "
        "and its load.",
    ]
    latest: dict[str, tuple[Run, dict[str, Any]]] = {}
    for run in history:
        for section in run["sections"]:
            latest[section["benchmark"]] = (run, section)
    noted: set[int] = set()
    for name in sorted(latest, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n)):
        run, section = latest[name]
        out += ["", render_section(section).rstrip("\n"), ""]
        out.append(f"Recorded {run['recorded_at']} by `{run['command']}`.")
        older = _unmeasured(history, section)
        if older:
            out += ["", "Rows that run did not measure, from their latest run:", ""]
            out += _table([*section["columns"], "recorded"], older)
        if run.get("notes") and id(run) not in noted:
            noted.add(id(run))
            out += ["", f"Notes on the {run['recorded_at']} run:", "", run["notes"]]
    return "\n".join(out) + "\n"


def _unmeasured(history: list[Run], current: dict[str, Any]) -> list[list[str]]:
    """Latest rows (same benchmark, same columns) whose first cell the current section lacks."""
    have = {row[0] for row in current["rows"]}
    found: dict[str, list[str]] = {}
    for run in history:
        for section in run["sections"]:
            if section["benchmark"] != current["benchmark"] or section["columns"] != current["columns"]:
                continue
            for row in section["rows"]:
                if row[0] not in have:
                    found[row[0]] = [*row, run["recorded_at"]]
    return list(found.values())


def record(run: Run, *, history: Path = HISTORY, results: Path = RESULTS) -> None:
    """Append one run to the history and re-render the results page from it."""
    runs = [*load(history), run]
    history.write_text(json.dumps(runs, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    results.write_text(render(runs), encoding="utf-8")
