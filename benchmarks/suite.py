"""`make bench` and `make bench-quick`: every measurement of issue 14's targets, then the targets table.

    .venv/bin/python -m benchmarks.suite [--quick] [--out DIR] [--record]

In order, each a subprocess writing one JSON file into DIR (benchmarks/targets.py names them): the shared
peer harness with keel's plug-in (postgres target: bare, postgres, mw-postgres, concurrency; embedded
target: bare, sqlite), `benchmarks.profile_run` for both profiles (counts and the pyinstrument top frames),
`benchmarks.coldstart` and `benchmarks.replicas`. keel's records go to a fresh database created for the
run and dropped after it (the harness's checkpoints stay in `bench`, created when missing). Then it prints
the harness section and the targets table. `--record` (`make bench`) appends both sections to
benchmarks/history.json and re-renders benchmarks/RESULTS.md, with the commands and the files' paths;
without it nothing tracked is written. `--from DIR` measures nothing and reports DIR's files
(`make bench-render`, after a reason is written in benchmarks/targets_notes.md).

`--quick` (`make bench-quick`, in CI) runs every path on a reduced size (the harness's `--quick` with one
round, 10 concurrent runs, 3 profiled runs, one cold start, 20 replica runs) into a temp folder and never
records. Without the shared harness (benchmarks/harness.py) the harness steps are skipped with one line
and the rest runs over keel's scripted stand-in model. The exit status is 1 when a step failed, never
because of a figure: the table only reports.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from benchmarks import peer_section, replicas, targets_section
from benchmarks.harness import ROOT, find
from benchmarks.history import parse_section, render_section
from benchmarks.history import record as record_run
from benchmarks.targets import FILES

__all__ = ["main", "steps"]

PY = sys.executable


def _admin(dsn: str, statement: str, name: str, *, unless_exists: bool = False) -> None:
    """CREATE or DROP the database `name` on `dsn`'s server (CREATE skipped when it exists, if asked)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(psycopg.conninfo.make_conninfo(dsn, dbname="postgres"), autocommit=True) as conn:
        if unless_exists and conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return
        conn.execute(sql.SQL(statement).format(sql.Identifier(name)))


@contextlib.contextmanager
def _databases(dsn: str) -> Iterator[str]:
    """Create the bench database when it is missing (a fresh machine has none), and a fresh database for
    keel's records, dropped afterwards: the shared `bench` database may hold the schema of another
    checkout's newer migrations, which keel's migrate refuses. Yields the records database's DSN."""
    import psycopg

    _admin(
        dsn,
        "CREATE DATABASE {}",
        psycopg.conninfo.conninfo_to_dict(dsn).get("dbname") or "bench",
        unless_exists=True,
    )
    records = f"bench_keel_{uuid.uuid4().hex[:8]}"
    _admin(dsn, "CREATE DATABASE {}", records)
    try:
        yield urlunsplit(urlsplit(dsn)._replace(path=f"/{records}"))
    finally:
        _admin(dsn, "DROP DATABASE IF EXISTS {} WITH (FORCE)", records)


def steps(out: Path, harness: Path | None, quick: bool) -> list[tuple[str, list[str], dict[str, str]]]:
    """(file name, argv, extra environment) of every measurement, in the order they run."""
    peer = [PY, str(harness)] if harness else []
    if quick:
        peer_args = ["--quick", "--rounds", "1", "--runs", "2", "--warmup", "1"]
        conc = ["--conc-runs", "10", "--conc-rounds", "1"]
        prof, cold, rep = (
            ["--runs", "3", "--warmup", "1"],
            ["--repeat", "1"],
            ["--runs", "20", "--inflight", "10"],
        )
    else:
        peer_args, prof, cold, rep = [], [], [], []
        conc = ["--conc-rounds", os.environ.get("BENCH_CONC_ROUNDS", "2")]
    found: list[tuple[str, list[str], dict[str, str]]] = []
    if harness:
        found += [
            (
                "peer-postgres",
                [
                    *peer,
                    *peer_args,
                    *conc,
                    "--scenarios",
                    "bare,postgres,mw-postgres,concurrency",
                    "--target",
                    "benchmarks.peer_target:make_postgres",
                    "--out",
                    str(out / "peer-postgres.json"),
                ],
                {"KEEL_BENCH_OUTCOMES": str(out / "outcomes-postgres.json")},
            ),
            (
                "peer-embedded",
                [
                    *peer,
                    *peer_args,
                    "--scenarios",
                    "bare,sqlite",
                    "--target",
                    "benchmarks.peer_target:make_embedded",
                    "--out",
                    str(out / "peer-embedded.json"),
                ],
                {},
            ),
        ]
    for profile in ("postgres", "embedded"):
        argv = [PY, "-m", "benchmarks.profile_run", "--profile", profile, "--pyinstrument", *prof]
        found.append((f"profile-{profile}", [*argv, "--out", str(out / f"profile-{profile}.json")], {}))
    found.append(
        ("coldstart", [PY, "-m", "benchmarks.coldstart", *cold, "--out", str(out / "coldstart.json")], {})
    )
    found.append(
        ("replicas", [PY, "-m", "benchmarks.replicas", *rep, "--out", str(out / "replicas.json")], {})
    )
    return found


def _shown(argv: list[str]) -> str:
    """A command as a reader would type it from the project root."""
    words = [".venv/bin/python" if w == PY else w for w in argv]
    return " ".join(os.path.relpath(w, ROOT) if w.startswith(str(ROOT)) else w for w in words)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.suite", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="reduced sizes, a temp folder, never recorded")
    ap.add_argument("--out", default=None, help="folder for the JSON files (default benchmarks/results)")
    ap.add_argument("--record", action="store_true", help="append to history.json, re-render RESULTS.md")
    ap.add_argument(
        "--from", dest="source", default=None, help="measure nothing: the table from this folder's JSON files"
    )
    args = ap.parse_args(argv)
    if args.quick and args.record:
        ap.error("--quick runs are never recorded")
    if args.source:
        return _report(Path(args.source), quick=False, record=args.record, commands=None, failed=[])
    default = tempfile.mkdtemp(prefix="keel-bench-quick-") if args.quick else ROOT / "benchmarks" / "results"
    out = Path(args.out or default)
    out.mkdir(parents=True, exist_ok=True)
    for name in FILES:  # a failed step must not leave an older run's figures in the table
        (out / f"{name}.json").unlink(missing_ok=True)
    started, harness = time.perf_counter(), find()
    if harness is None:
        if not args.quick:
            raise SystemExit(
                "make bench needs the shared peer harness: set PEER_BENCH=/path/to/peer_bench.py"
            )
        print("bench-quick: no shared peer harness (PEER_BENCH, ../shared/bench); keel's own steps only")
    from benchmarks.peer_target import PG_DSN

    with _databases(PG_DSN) as records:
        failed, commands = _run(out, harness, args.quick, records)
    print(
        f"{'bench-quick' if args.quick else 'bench'}: {time.perf_counter() - started:.0f} s, files in {out}"
    )
    return _report(out, quick=args.quick, record=args.record, commands=commands, failed=failed)


def _run(out: Path, harness: Path | None, quick: bool, records: str) -> tuple[list[str], list[str]]:
    """Every step in order, with keel's records in `records`: (the failed steps, the commands)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    env["KEEL_LOG_LEVEL"] = "warning"
    env["KEEL_BENCH_RECORDS_DSN"] = records
    failed, commands = [], []
    for name, step, extra in steps(out, harness, quick):
        print(f"== {name}: {_shown(step)}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        done = subprocess.run(step, cwd=ROOT, env={**env, **extra}, stdout=subprocess.DEVNULL, check=False)
        took = time.perf_counter() - t0
        print(f"== {name}: exit {done.returncode} after {took:.0f} s", file=sys.stderr, flush=True)
        commands.append(_shown(step))
        if done.returncode != 0:
            failed.append(name)
    return failed, commands


def _report(out: Path, *, quick: bool, record: bool, commands: list[str] | None, failed: list[str]) -> int:
    """Print the harness section and the targets table from `out`'s files; with `record`, record them."""
    results = targets_section.load(out)
    sources = [
        os.path.relpath(out.resolve() / f"{name}.json", ROOT) if not quick else f"{name}.json"
        for name in FILES
        if name in results
    ]
    labels = (("postgres", "peer-postgres"), ("embedded", "peer-embedded"))
    harness_runs = {label: results[name] for label, name in labels if name in results}
    sections = []
    if harness_runs:
        sections.append(parse_section("peer", peer_section.section(harness_runs)))
    sections.append(
        parse_section("targets", targets_section.section(results, targets_section.notes(), sources))
    )
    if "replicas" in results:
        sections.append(parse_section("replicas", replicas.section(results["replicas"])))
    for section in sections:
        print(render_section(section))
    if record:
        how = " ; ".join(commands) if commands is not None else f"the table from {', '.join(sources)}"
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        record_run({"recorded_at": stamp, "command": f"make bench ({how})", "sections": sections})
        print("recorded in benchmarks/history.json and benchmarks/RESULTS.md")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
