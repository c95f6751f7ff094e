"""Policy reload without restart, `keel policy explain|validate`, and the per-turn tool-call limit."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from langchain_core.messages import AIMessage
from typer.testing import CliRunner

from keel.cli import app
from keel.testing.fake_model import tool_call

STRICT = """version: 1
roles: [admin, user]
rules:
  - {role: user, tool: "write_*", resource: "own:*", effect: allow}
"""
OPEN = STRICT + '  - {role: user, tool: "write_*", resource: "shared:*", effect: allow}\n'


def _bump(path: Path, text: str) -> None:
    """Write a new version of the file whose mtime surely differs from the last one."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(before + 10**9, before + 10**9))


async def _statuses(keel, thread_id: str) -> list[tuple]:
    return [(r.event, r.decision, r.status) for r in await keel.records.audit_for(thread_id=thread_id)]


async def test_an_edited_policy_applies_to_the_next_call_and_a_broken_edit_keeps_the_old_one(
    make_keel, workspace: Path, tmp_path: Path, caplog
):
    policy = tmp_path / "policy.yaml"
    _bump(policy, STRICT)
    write = lambda n: tool_call("write_file", f"w{n}", path=f"shared/n{n}.md", content="hi")  # noqa: E731
    turns = [write(1), "denied", write(2), "allowed", write(3), "still allowed"]
    async with make_keel(turns, policy_file=policy) as keel:
        first = await keel.run("write a shared note", user_id="alice")
        assert await _statuses(keel, first.thread_id) == [("permission", "deny", "denied")]
        assert not (workspace / "shared/n1.md").exists()

        _bump(policy, OPEN)  # no restart
        second = await keel.run("write it again", user_id="alice")
        assert [s[1] for s in await _statuses(keel, second.thread_id)][:1] == ["allow"]
        assert (workspace / "shared/n2.md").read_text() == "hi"

        _bump(policy, OPEN + "  - {role: user, tool: x, resource: y, effect: alow}\n")
        with caplog.at_level(logging.ERROR, logger="keel.policy"):
            third = await keel.run("and once more", user_id="alice")
        assert (workspace / "shared/n3.md").exists()  # the last valid policy is still in force
        assert any("policy.yaml:6: rule #3: unknown effect 'alow'" in r.getMessage() for r in caplog.records)
        assert "allow" in [s[1] for s in await _statuses(keel, third.thread_id)]
        assert keel.backends.policy.current().source == str(policy)


async def test_calls_beyond_the_per_turn_limit_are_refused_audited_and_never_run(make_keel, workspace: Path):
    calls = [
        {"name": "write_file", "args": {"path": f"~/c{i}.md", "content": str(i)}, "id": f"c{i}"}
        for i in range(5)
    ]
    async with make_keel(
        [AIMessage(content="", tool_calls=calls), "done"], max_tool_calls_per_turn=2
    ) as keel:
        out = await keel.run("write five notes", user_id="alice")
        assert out.status == "succeeded"
        home = workspace / "home" / "alice"
        assert sorted(p.name for p in home.glob("c*.md")) == ["c0.md", "c1.md"]
        rows = await keel.records.audit_for(thread_id=out.thread_id)
        refused = [r for r in rows if r.status == "too_many_calls"]
        assert [r.tool_call_id for r in refused] == ["c2", "c3", "c4"]
        assert all(r.event == "permission" and r.decision == "invalid" for r in refused)
        assert not [r for r in rows if r.event == "tool_call" and r.tool_call_id in {"c2", "c3", "c4"}]
        told = {m.tool_call_id: m for m in keel.fake_model.calls[-1]["messages"] if m.type == "tool"}
        assert set(told) == {f"c{i}" for i in range(5)}  # every call got an answer
        assert "more than 2 tool calls" in told["c4"].content and told["c4"].status == "error"


def _cli(*args: str, home: Path):
    return CliRunner().invoke(app, list(args), env={"KEEL_HOME": str(home), "COLUMNS": "200"})


def test_policy_explain_names_every_rule_tried_and_the_failing_pattern(tmp_path: Path):
    args = ["policy", "explain", "--role", "user", "--tool", "write_file", "--user", "alice"]
    text = _cli(*args, "--args", '{"path": "home/bob/x.md", "content": "x"}', home=tmp_path)
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    assert lines[0] == "call: role=user tool=write_file resource=home:bob/x.md"
    assert "rule #1" in lines[1] and "role 'user' does not match 'admin'" in lines[1]
    assert "rule #2" in lines[2] and lines[2].endswith("matches")
    assert lines[-1].startswith("decision: deny (rule #2 at ")
    data = json.loads(_cli(*args, "--resource", "own:a.md", "--json", home=tmp_path).stdout)
    assert data["decision"] == "allow" and data["rule"]["index"] == 6
    assert [t["failed"] for t in data["tried"]] == [["role"], ["resource"], ["tool"], ["tool"], ["tool"], []]
    viewer = json.loads(
        _cli(
            "policy",
            "explain",
            "--role",
            "viewer",
            "--tool",
            "send_email",
            "--resource",
            "email:x@y.z",
            "--json",
            home=tmp_path,
        ).stdout
    )
    assert viewer["rule"] is None and viewer["decision"] == "deny" and len(viewer["tried"]) == 11


def test_policy_validate(tmp_path: Path):
    ok = _cli("policy", "validate", home=tmp_path)
    assert ok.exit_code == 0 and "11 rules, roles admin, user, viewer, approvers admin" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nrules:\n  - {role: user, tool: '*', resource: '*'}\n", encoding="utf-8")
    result = _cli("policy", "validate", str(bad), home=tmp_path)
    assert result.exit_code == 1
    assert f"{bad}:3: rule #1: missing field(s) effect" in " ".join(result.stderr.split())
    missing = _cli("policy", "validate", str(tmp_path / "nope.yaml"), home=tmp_path)
    assert missing.exit_code == 1 and "cannot read policy file" in missing.stderr
