"""`keel memory list|search|forget|stats`: operators see and erase one user's memories, never another's."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from keel.cli import app
from keel.memory.long_term import LongTermMemory
from keel.memory.types import MemoryScope
from keel.settings import Settings


def test_list_search_forget_one_user(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = LongTermMemory.from_settings(Settings(home=home, embeddings="hashing"))
    store.remember_many_sync(MemoryScope(user_id="alice"), ["deploys happen on tuesdays", "alice likes tea"])
    store.remember_sync(MemoryScope(user_id="bob"), "bob deploys on fridays")
    env = {"KEEL_HOME": str(home), "KEEL_EMBEDDINGS": "hashing", "COLUMNS": "200"}
    runner = CliRunner()

    def run(*args: str) -> object:
        result = runner.invoke(app, ["memory", *args], env=env)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    listed = run("list", "--user", "alice", "--json")
    assert "not a language model" in listed["embedder"]
    assert sorted(m["text"] for m in listed["memories"]) == ["alice likes tea", "deploys happen on tuesdays"]
    found = run("search", "deploys on tuesdays", "--user", "alice", "-k", "5", "--json")["memories"]
    assert found[0]["text"] == "deploys happen on tuesdays" and {m["user_id"] for m in found} == {"alice"}
    assert run("stats", "--json")["memories"] == 3
    assert run("forget", "--user", "alice", "--json")["deleted"] == 2
    assert run("list", "--user", "alice", "--json")["memories"] == []
    assert [m["text"] for m in run("list", "--user", "bob", "--json")["memories"]] == [
        "bob deploys on fridays"
    ]

    bad = runner.invoke(app, ["memory", "forget", "--user", "*"], env=env)
    assert bad.exit_code == 1 and "memory scope user_id='*' is invalid" in bad.output
    assert run("stats", "--json")["memories"] == 1
