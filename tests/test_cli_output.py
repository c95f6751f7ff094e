"""The CLI in a pipe and in a script: plain complete lines, --json everywhere, one-line usage errors.

CliRunner's stdout is not a terminal, so every command here renders as it does in `keel … | cat`; one
test goes through a real pipe to the installed `keel` script.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from keel.cli import app
from tests.rollout_project import RolloutProject

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

BOX = re.compile("[\u2500-\u257f]")
"""Box-drawing characters: a table's borders."""
ANSI = re.compile("\x1b\\[")
LONG_TASK = "list shared " + "then list shared " * 14  # ~250 characters: wider than any default console


@pytest.fixture
def cli(tmp_path: Path):
    runner = CliRunner()
    env = {"KEEL_HOME": str(tmp_path / "home"), "KEEL_EMBEDDINGS": "hashing", "COLUMNS": "80"}

    def invoke(*args: str, stdin: str | None = None, **extra_env: str):
        return runner.invoke(app, list(args), env={**env, **extra_env}, input=stdin, prog_name="keel")

    return invoke


def _plain(text: str) -> None:
    assert not BOX.search(text), text
    assert not ANSI.search(text), text


def _pause(cli: Any, home: Path) -> dict[str, Any]:
    (home / "workspace" / "home" / "alice").mkdir(parents=True, exist_ok=True)
    (home / "workspace" / "home" / "alice" / "draft.md").write_text("old")
    result = cli("run", "delete ~/draft.md", "--user", "alice", "--json")
    assert result.exit_code == 3, result.output
    return json.loads(result.stdout)


def test_listings_in_a_pipe_are_tab_separated_with_whole_ids(cli, tmp_path: Path) -> None:
    finished = json.loads(cli("run", LONG_TASK, "--user", "alice", "--json").stdout)
    paused = _pause(cli, tmp_path / "home")
    approval = paused["approval"]

    listed = cli("executions", "list")
    _plain(listed.stdout)
    header, *rows = listed.stdout.splitlines()
    assert header.split("\t")[:2] == ["execution", "thread"]
    cells = [row.split("\t") for row in rows]
    assert all(len(c) == len(header.split("\t")) for c in cells)
    assert [finished["execution_id"], finished["thread_id"]] in [c[:2] for c in cells]
    assert LONG_TASK.strip() in [c[-1] for c in cells]  # the whole task, on one line

    approvals = cli("approvals", "list")
    _plain(approvals.stdout)
    header, row = approvals.stdout.splitlines()
    fields = dict(zip(header.split("\t"), row.split("\t"), strict=True))
    assert fields["id"] == approval["approval_id"] and fields["thread"] == paused["thread_id"]
    assert fields["args_hash"] == approval["args_hash"] and len(fields["args_hash"]) == 64

    # What was printed pastes into the next command.
    done = cli("approvals", "approve", fields["id"], "--args-hash", fields["args_hash"], "--approver", "ops")
    assert done.exit_code == 0, done.output
    _plain(done.stdout)
    assert not (tmp_path / "home" / "workspace" / "home" / "alice" / "draft.md").exists()

    tail = cli("audit", "tail", "--thread", paused["thread_id"])
    _plain(tail.stdout)
    assert tail.stdout.splitlines()[0].startswith("#\ttime (UTC)\tevent")

    health = cli("health")
    _plain(health.stdout)
    verdict, header, *rows = health.stdout.splitlines()
    assert verdict.endswith("over the last 60m") and header == "metric\tvalue"
    assert rows[0] == "executions\t2 (2 finished)" and rows[1].startswith("success rate\t")


def test_demo_in_a_pipe_is_plain(cli) -> None:
    result = cli("demo")
    assert result.exit_code == 0, result.output
    _plain(result.stdout)
    lines = result.stdout.splitlines()
    assert "Approval requests:" in lines and "answer — succeeded:" in lines
    summary = json.loads(cli("demo", "--json").stdout)
    assert summary["status"] == "succeeded" and summary["approvals"][0]["decision"] == "approve"
    assert {"permission", "approval_decision", "tool_call"} <= {r["event"] for r in summary["audit"]}


def test_a_real_pipe_gets_plain_complete_lines(tmp_path: Path) -> None:
    keel = Path(sys.executable).with_name("keel")
    env = {**os.environ, "KEEL_HOME": str(tmp_path / "home"), "COLUMNS": "40", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    (tmp_path / "home" / "workspace" / "home" / "alice").mkdir(parents=True)
    (tmp_path / "home" / "workspace" / "home" / "alice" / "draft.md").write_text("old")

    def keel_pipe(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(keel), *args], env=env, capture_output=True, text=True, timeout=120, check=False
        )

    paused = keel_pipe("run", "delete ~/draft.md", "--user", "alice")
    assert paused.returncode == 3, paused.stderr
    _plain(paused.stdout)
    assert paused.stderr == ""  # no log lines by default
    listed = keel_pipe("approvals", "list")
    _plain(listed.stdout)
    header, row = listed.stdout.splitlines()
    fields = dict(zip(header.split("\t"), row.split("\t"), strict=True))
    assert f"keel approvals approve {fields['id']} --args-hash {fields['args_hash']}" in paused.stdout
    executions = keel_pipe("executions", "list")
    assert fields["thread"] in executions.stdout.splitlines()[1].split("\t")


def test_a_reader_that_stops_early_gets_no_error(tmp_path: Path) -> None:
    """`keel demo | head -1`: the reader closed the pipe on purpose; keel stops quietly (no error line)."""
    keel = Path(sys.executable).with_name("keel")
    env = {**os.environ, "KEEL_HOME": str(tmp_path / "home"), "KEEL_LOG_LEVEL": "warning"}
    done = subprocess.run(
        f"'{keel}' demo | head -1", shell=True, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.stdout.startswith("keel demo"), done.stdout
    assert done.stderr == "", done.stderr


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    found: dict[tuple[str, ...], Any] = {}
    for name, command in getattr(group, "commands", {}).items():
        if getattr(command, "commands", None):
            found |= _commands(command, (*prefix, name))
        else:
            found[(*prefix, name)] = command
    return found


# Arguments under which each command does its work (and prints JSON); `{thread}` is a paused run's.
JSON_ARGS: dict[tuple[str, ...], list[str]] = {
    ("run",): ["list shared", "--user", "alice"],
    ("resume",): ["{stopped}"],
    ("demo",): [],
    ("init",): ["{project}"],
    ("sweep",): [],
    ("health",): [],
    ("metrics",): [],
    ("approvals", "list"): [],
    ("approvals", "approve"): ["{approval}", "--approver", "ops"],
    ("approvals", "reject"): ["{approval2}", "--approver", "ops"],
    ("audit", "tail"): [],
    ("audit", "verify"): [],
    ("executions", "list"): [],
    ("feedback",): ["{execution}", "1", "--user", "alice"],
    ("budget", "show"): ["--user", "alice"],
    ("budget", "set"): ["--user", "alice", "--usd", "5"],
    ("budget", "history"): ["--user", "alice"],
    ("cache", "stats"): [],
    ("cache", "clear"): [],
    ("policy", "check"): ["--role", "user", "--tool", "read_file", "--resource", "shared:x"],
    ("policy", "explain"): ["--role", "user", "--tool", "read_file", "--resource", "shared:x"],
    ("policy", "validate"): [],
    ("tools", "list"): [],
    ("tools", "pin"): ["--config", "{notes}"],
    ("versions", "list"): [],
    ("versions", "show"): ["{version}", "{version}"],
    ("rollout", "status"): [],
    ("rollout", "set"): ["b", "20", "--by", "ops"],
    ("rollout", "stop"): ["b", "--by", "ops"],
    ("rollout", "resume"): ["b", "--by", "ops"],
    ("report", "ab"): [],
    ("memory", "list"): ["--user", "alice"],
    ("memory", "search"): ["shared", "--user", "alice"],
    ("memory", "forget"): ["--user", "alice"],
    ("memory", "stats"): [],
    ("workspace", "ls"): [],
    ("workspace", "get"): ["shared/handbook.md"],
    ("workspace", "put"): ["shared/new.md"],
    ("workspace", "seed"): [],
}


def test_every_command_takes_json_and_prints_one_json_document(cli, tmp_path: Path) -> None:
    commands = _commands(typer.main.get_command(app))
    assert set(commands) == set(JSON_ARGS), "a new command needs its line in JSON_ARGS"
    for path, command in commands.items():
        assert any("--json" in p.opts for p in command.params), path
    home = tmp_path / "home"
    assert cli("workspace", "seed").exit_code == 0
    ids = {
        "approval": _pause(cli, home)["approval"]["approval_id"],
        "approval2": _pause(cli, home)["approval"]["approval_id"],
    }
    stopped = cli("run", "list shared then list shared", "--user", "alice", "--json", KEEL_MAX_STEPS="1")
    assert stopped.exit_code == 4, stopped.output  # max_steps: resumable
    ids["stopped"] = json.loads(stopped.stdout)["thread_id"]
    ids["execution"] = json.loads(stopped.stdout)["execution_id"]
    ids["project"] = str(tmp_path / "new-agent")
    ids["version"] = json.loads(cli("versions", "list", "--json").stdout)[0]["version_id"]  # the runs' own
    notes = shutil.copytree(
        EXAMPLES / "notes_mcp", tmp_path / "notes_mcp", ignore=shutil.ignore_patterns("notes")
    )
    ids["notes"] = str(
        notes / "keel.yaml"
    )  # an MCP server to pin (a copy: the example's pins stay as committed)
    # The rollout commands run under a rollout of their own (the other commands under none).
    rollout = {"KEEL_ROLLOUT_FILE": str(RolloutProject(tmp_path / "rollout").rollout)}
    order = {("memory", "forget"): 1, ("rollout", "stop"): 0.5, ("rollout", "resume"): 0.6}
    for path, args in sorted(JSON_ARGS.items(), key=lambda kv: order.get(kv[0], 0)):
        filled = [a.format(**ids) for a in args]
        env = rollout if path[0] == "rollout" else {}
        result = cli(*path, *filled, "--json", stdin="hello\n", **env)
        # 4: the resumed run may stop at max_steps again; 6: a rejected call is a tools_refused run.
        assert result.exit_code in (0, 4, 6), (path, result.output)
        json.loads(result.stdout)  # one JSON document, nothing else on stdout
        _plain(result.stdout)


@pytest.mark.parametrize("path", sorted(JSON_ARGS))
def test_a_bad_option_is_one_line_on_stderr_with_exit_code_2(cli, path: tuple[str, ...]) -> None:
    result = cli(*path, "--no-such-option")
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: keel {' '.join(path)}: ") and "--no-such-option" in line


def test_usage_errors_name_the_problem_in_one_line(cli) -> None:
    for args, words in (
        (("run",), "Missing argument"),
        (("nope",), "No such command 'nope'"),
        (("budget", "set", "--user", "alice", "--usd", "lots"), "Invalid value for '--usd'"),
    ):
        result = cli(*args)
        assert result.exit_code == 2, result.output
        (line,) = result.stderr.strip().splitlines()
        assert words in line


def test_text_that_looks_like_an_emoji_code_is_printed_as_it_is(cli) -> None:
    """rich would print `:house:` as an emoji: a thread id or model id must come out as typed."""
    result = cli("resume", "t:house:1")
    assert result.exit_code == 1 and "t:house:1" in result.stderr, result.stderr
