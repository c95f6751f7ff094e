"""The rollout walk-through of docs/operations.md, run as written: version B of the support desk at 10 % with
two canaries, watched in `keel report ab`, stopped by its guard rail, fixed and resumed, offline.

Each `keel …` line runs in this process (CliRunner; a new process per line would cost a second and a half
each) in a copy of the example, with the environment its `export` line sets; other shell lines run in bash.
A line's `# exit N` is the exit code it must give (0 without one)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel.cli import app

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "operations.md"


def _walkthrough() -> list[str]:
    text = PAGE.read_text(encoding="utf-8")
    start = text.index("**Walk-through**")
    block = text[text.index("```sh\n", start) + 6 :]
    return [line for line in block[: block.index("```")].splitlines() if line.strip()]


def test_the_walkthrough_starts_b_stops_it_on_its_guard_rail_and_resumes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = _walkthrough()
    assert lines[0] == "cp -r examples/support_desk /tmp/desk && cd /tmp/desk"
    desk = tmp_path / "desk"
    shutil.copytree(
        ROOT / "examples" / "support_desk", desk, ignore=shutil.ignore_patterns(".keel", "__pycache__")
    )
    monkeypatch.chdir(desk)
    env: dict[str, str] = {"KEEL_EMBEDDINGS": "hashing", "COLUMNS": "200"}
    runner = CliRunner()
    outputs: list[tuple[str, str]] = []
    for line in lines[1:]:
        command = line.split("  #")[0].strip()
        claimed = re.search(r"#\s*exit (\d+)", line)
        expected = int(claimed.group(1)) if claimed else 0
        if command.startswith("export "):
            for pair in shlex.split(command)[1:]:
                name, _, value = pair.partition("=")
                env[name] = value.replace("/tmp/desk", str(desk))
            continue
        if not command.startswith("keel "):
            done = subprocess.run(["bash", "-c", command], cwd=desk, capture_output=True, text=True)
            assert done.returncode == expected, f"{command}: {done.stderr}"
            continue
        result = runner.invoke(app, shlex.split(command)[1:], env=env, prog_name="keel")
        assert result.exit_code == expected, f"{command}: exit {result.exit_code}\n{result.output}"
        outputs.append((command, result.stdout))

    by_command = [(c, out) for c, out in outputs]
    statuses = [out for c, out in by_command if c == "keel rollout status"]
    assert re.search(r"^b\trunning\t", statuses[0], re.M) and "10.0%" in statuses[0]
    assert re.search(r"^b\tstopped\t.*success rate 0\.0% is below 80\.0% over 3 runs", statuses[1], re.M)
    report = next(out for c, out in by_command if c.startswith("keel report ab"))
    assert re.search(r"b vs a: worse", report), report

    # What the records say, as JSON: b's runs, its stop by the guard rail and its resume, all audited.
    audit = runner.invoke(app, ["audit", "tail", "-n", "50", "--json"], env=env)
    events = [row["event"] for row in json.loads(audit.stdout)]
    assert events.count("rollout_stop") == 1 and events.count("rollout_resume") == 1
    stop = next(row for row in json.loads(audit.stdout) if row["event"] == "rollout_stop")
    assert stop["user_id"] == "keel-guard-rail" and stop["args"]["runs"] == 3
    runs = json.loads(runner.invoke(app, ["executions", "list", "--json"], env=env).stdout)
    arms = [(r["user_id"], r["arm"], r["status"]) for r in sorted(runs, key=lambda r: r["started_at"])]
    assert arms == [
        ("ana", "a", "succeeded"),
        ("ben", "a", "succeeded"),
        ("dana", "b", "failed"),
        ("eli", "b", "failed"),
        ("eli", "b", "failed"),
        ("dana", "a", "succeeded"),  # b stopped: back on the stable arm
        ("dana", "b", "succeeded"),  # b fixed and resumed
    ]
    versions = {r["arm"]: set() for r in runs}
    for r in runs:
        versions[r["arm"]].add(r["version"])
    assert len(versions["b"]) == 2  # the fix is a new version of b
