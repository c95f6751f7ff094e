"""The `keel` CLI, as an operator uses it: JSON out, one-line errors, non-zero exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel.cli import app


@pytest.fixture
def cli(tmp_path: Path):
    runner = CliRunner()
    env = {"KEEL_HOME": str(tmp_path / "home"), "COLUMNS": "200"}

    def invoke(*args: str, **extra_env: str):
        return runner.invoke(app, list(args), env={**env, **extra_env})

    return invoke


def _json(result) -> object:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_policy_check_prints_decision_and_rule(cli):
    out = _json(
        cli("policy", "check", "--role", "user", "--tool", "write_file", "--resource", "own:notes.md")
    )
    assert out["decision"] == "allow"
    assert out["rule"]["tool"] == "write_*" and out["rule"]["resource"] == "own:*"
    denied = _json(cli("policy", "check", "--role", "user", "--tool", "write_file", "--resource", "shared:x"))
    assert denied["decision"] == "deny"
    ask = _json(cli("policy", "check", "--role", "user", "--tool", "delete_file", "--resource", "own:x"))
    assert ask["decision"] == "ask"
    nothing = _json(cli("policy", "check", "--role", "viewer", "--tool", "write_file", "--resource", "own:x"))
    assert nothing["decision"] == "deny" and nothing["rule"] is None


def test_policy_check_derives_the_resource_from_args(cli):
    out = _json(
        cli(
            "policy",
            "check",
            "--role",
            "user",
            "--tool",
            "write_file",
            "--user",
            "alice",
            "--args",
            '{"path": "~/a.md", "content": "x"}',
        )
    )
    assert (out["resource"], out["decision"]) == ("own:a.md", "allow")
    other = _json(
        cli(
            "policy",
            "check",
            "--role",
            "user",
            "--tool",
            "read_file",
            "--user",
            "alice",
            "--args",
            '{"path": "home/bob/a.md"}',
        )
    )
    assert (other["resource"], other["decision"]) == ("home:bob/a.md", "deny")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--role", "root", "--tool", "read_file", "--resource", "x"), "unknown role 'root'"),
        (("--role", "user", "--tool", "nope", "--args", "{}"), "unknown tool 'nope'"),
        (
            ("--role", "user", "--tool", "read_file", "--args", '{"path": "../../etc/passwd"}'),
            "leaves the workspace",
        ),
        (("--role", "user", "--tool", "read_file"), "give --resource or --args"),
    ],
)
def test_policy_check_bad_input_is_one_line_and_non_zero(cli, args, words):
    result = cli("policy", "check", *args)
    assert result.exit_code == 1
    assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_malformed_policy_file_names_file_and_line(cli, tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nrules:\n  - {role: user, tool: x, resource: y, effect: alow}\n")
    result = cli("policy", "check", "--role", "user", "--tool", "x", "--resource", "y", "--policy", str(bad))
    assert result.exit_code == 1
    assert f"{bad}:3:" in result.stderr and "alow" in result.stderr
    run = cli("run", "hi", "--user", "alice", KEEL_POLICY_FILE=str(bad))
    assert run.exit_code == 1 and f"{bad}:3:" in run.stderr


def test_run_pause_approve_and_inspect(cli, tmp_path: Path):
    home = tmp_path / "home" / "workspace" / "home" / "alice"
    home.mkdir(parents=True)
    (home / "draft.md").write_text("old")
    pausing = cli("run", "read ~/draft.md then delete ~/draft.md", "--user", "alice", "--json")
    assert pausing.exit_code == 3, pausing.output  # the documented code for "paused for approval"
    paused = json.loads(pausing.stdout)
    assert paused["status"] == "awaiting_approval"
    approval_id = paused["approval"]["approval_id"]

    listed = _json(cli("approvals", "list", "--json"))
    assert [a["approval_id"] for a in listed] == [approval_id]
    refused = cli("approvals", "approve", approval_id, "--approver-role", "user")
    assert refused.exit_code == 1 and "may not decide approvals" in refused.stderr

    stale = cli("approvals", "approve", approval_id, "--approver", "ops", "--args-hash", "0" * 64)
    assert stale.exit_code == 1 and "made for other arguments" in stale.stderr  # bound to what was shown
    assert len(stale.stderr.strip().splitlines()) == 1 and (home / "draft.md").exists()

    shown = listed[0]["args_hash"]
    done = _json(
        cli("approvals", "approve", approval_id, "--approver", "ops", "--args-hash", shown, "--json")
    )
    assert done["status"] == "succeeded" and "scripted" in done["answer"]
    assert not (home / "draft.md").exists()
    again = cli("approvals", "reject", approval_id)
    assert again.exit_code == 1 and "already approved" in again.stderr

    rows = _json(cli("audit", "tail", "--thread", paused["thread_id"], "--json"))
    assert [(r["event"], r["tool"]) for r in rows] == [
        ("permission", "read_file"),
        ("tool_call", "read_file"),
        ("permission", "delete_file"),
        ("approval_refused", "delete_file"),  # the attempt with --approver-role user
        ("approval_refused", "delete_file"),  # the attempt with another args hash
        ("approval_decision", "delete_file"),
        ("tool_call", "delete_file"),
    ]
    assert rows[5]["approver"] == "ops"
    executions = _json(cli("executions", "list", "--json"))
    assert executions[0]["status"] == "succeeded" and executions[0]["tools_used"] == [
        "read_file",
        "delete_file",
    ]
    table = cli("audit", "tail")
    assert table.exit_code == 0 and "approval_decision" in table.stdout


def test_run_errors_are_one_line(cli):
    result = cli("run", "hi", "--user", "alice", "--role", "root")
    assert result.exit_code == 1 and "unknown role 'root'" in result.stderr
    result = cli("resume", "no-such-thread")
    assert result.exit_code == 1 and "no run on thread no-such-thread" in result.stderr
    result = cli(
        "run",
        "hi",
        "--user",
        "alice",
        KEEL_PROFILE="postgres",
        KEEL_DATABASE_URL="postgresql://127.0.0.1:1/keel",
    )
    # The records database is down: a dependency unavailable (exit 5), nothing lost, try again later.
    assert result.exit_code == 5 and "127.0.0.1:1" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_demo_runs_the_whole_graph_offline(cli, tmp_path: Path):
    result = cli("demo")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "offline scripted model" in text
    for expected in (
        "Approval requests",
        "denied by policy",
        "approval_decision",
        "answer — succeeded",
        "handbook-summary.md",
    ):
        assert expected in text
    summary = tmp_path / "home" / "workspace" / "home" / "alice" / "handbook-summary.md"
    assert "Deploys happen on Tuesdays" in summary.read_text()
    assert not (tmp_path / "home" / "workspace" / "home" / "alice" / "old-draft.md").exists()
