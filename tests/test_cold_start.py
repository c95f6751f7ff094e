"""Cold start: `keel --help` and every `keel <cmd> --help` import none of the heavy libraries, an offline
`keel run` imports Alembic only when the records database needs a migration, and never the Redis client
or the MCP SDK on the embedded profile (issue 14, "Cold start"). No timings: what is imported is checked,
which is what the time depends on (docs/operations.md, "Cold start", has the figures)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import typer.main

from keel.cli import app
from keel.records import Records
from keel.records.migrate import HEAD_REVISION, current_revision, head_revision, upgrade

HEAVY = frozenset(
    {
        "alembic",
        "chromadb",
        "langchain",
        "langchain_core",
        "langgraph",
        "langsmith",
        "mcp",
        "numpy",
        "opentelemetry",
        "psycopg",
        "redis",
        "sqlalchemy",
    }
)
"""What `keel --help` must not import (each costs tens to hundreds of milliseconds)."""

# Runs each command (a JSON list of argument lists) in turn in one process, then writes their exit codes
# and every module the process holds to the file named first.
_PROBE = """
import contextlib, io, json, sys
out, commands = sys.argv[1], json.loads(sys.argv[2])
from keel.cli import main
codes = []
for args in commands:
    sys.argv = ["keel", *args]
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            main()
    except SystemExit as exc:
        codes.append(exc.code if isinstance(exc.code, int) else int(exc.code is not None))
with open(out, "w") as f:
    json.dump({"codes": codes, "modules": sorted(sys.modules)}, f)
"""


def _probe(tmp_path: Path, commands: list[list[str]]) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
    env["KEEL_HOME"] = str(tmp_path / "home")
    out = tmp_path / "probe.json"
    subprocess.run(
        [sys.executable, "-c", _PROBE, str(out), json.dumps(commands)],
        cwd=tmp_path,
        env=env,
        check=True,
        timeout=300,
    )
    return json.loads(out.read_text())


def _heavy(modules: object) -> list[str]:
    assert isinstance(modules, list)
    return sorted({m.split(".")[0] for m in modules} & HEAVY)


def _command_paths(group: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for name, command in getattr(group, "commands", {}).items():
        path = (*prefix, name)
        paths += _command_paths(command, path) if hasattr(command, "commands") else [path]
    return paths


def test_help_of_every_command_imports_no_heavy_library(tmp_path: Path) -> None:
    paths = _command_paths(typer.main.get_command(app))
    assert ("run",) in paths and ("approvals", "approve") in paths  # the walk found the tree
    result = _probe(tmp_path, [[*path, "--help"] for path in paths])
    assert result["codes"] == [0] * len(paths)
    assert _heavy(result["modules"]) == []


def test_bare_keel_imports_no_heavy_library(tmp_path: Path) -> None:
    result = _probe(tmp_path, [[]])  # `keel` alone prints the help
    assert _heavy(result["modules"]) == []


def test_offline_run_migrates_a_new_database_then_skips_alembic(tmp_path: Path) -> None:
    workspace = tmp_path / "home" / "workspace"
    workspace.mkdir(parents=True)
    (workspace / "README.md").write_text("cold start\n")
    run = ["run", "--user", f"cold-start-{uuid.uuid4()}", "read README.md"]

    first = _probe(tmp_path, [run])  # a new records database: Alembic creates it
    assert first["codes"] == [0]
    assert "alembic" in _heavy(first["modules"])

    again = _probe(tmp_path, [run])  # at head: one SELECT, Alembic never imported
    assert again["codes"] == [0]
    heavy = _heavy(again["modules"])
    assert "alembic" not in heavy
    assert "redis" not in heavy and "mcp" not in heavy  # embedded profile, no MCP tool in the config
    assert {"sqlalchemy", "langgraph"} <= set(heavy)  # (the run did run)


def test_head_revision_constant_is_alembics_head() -> None:
    """A migration added without bumping HEAD_REVISION would be skipped by `Records.setup`."""
    assert head_revision() == HEAD_REVISION


async def test_setup_upgrades_a_database_behind_head(tmp_path: Path) -> None:
    records = Records.from_url(f"sqlite+aiosqlite:///{tmp_path / 'records.sqlite'}")
    try:
        async with records.transaction() as conn:
            await upgrade(conn, "0007")  # a database written by an older keel
        assert await current_revision(records.engine) == "0007"
        await records.setup()
        assert await current_revision(records.engine) == head_revision()
        await records.setup()  # at head: a no-op
        assert await current_revision(records.engine) == head_revision()
    finally:
        await records.close()
