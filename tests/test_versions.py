"""Agent versions: the id is `<name>@<hash of the bundle>`, the same in every process for one config and
different after any edit of the bundle; a run records it; `keel versions list|show` say what ran and what
changed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel.app.versions import AgentVersion, agent_version, diff_manifests
from keel.cli import app
from keel.config import load_config
from keel.records import Records
from keel.settings import Settings, shipped_file
from keel.testing.fake_model import FakeChatModel
from keel.tools.from_config import registry_from_config, tool_prices

CONFIG = """\
agent: {{name: desk, version: v2, prompt: prompt.md}}
model: {model}
tools:
  - import: {module}:lookup_order
    effect: {effect}
    resource: "order:{{order_id}}"
  - builtin: read_file
policy: policy.yaml
prices: prices.yaml
limits: limits.yaml
"""

TOOL = '''\
def lookup_order(order_id: int) -> str:
    """Look up an order by its number."""
    return f"order {order_id}"
'''


class Project:
    """A keel.yaml project in a folder, with the knobs the tests turn."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.module = f"versions_tools_{uuid.uuid4().hex[:8]}"
        self.model = "scripted:keel-scripted"
        self.effect = "read"
        root.mkdir(parents=True, exist_ok=True)
        (root / f"{self.module}.py").write_text(TOOL, encoding="utf-8")
        (root / "prompt.md").write_text("You help with orders.\n", encoding="utf-8")
        for name, shipped in (("policy", "default"), ("prices", "prices"), ("limits", "limits")):
            (root / f"{name}.yaml").write_text(shipped_file(f"{shipped}.yaml").read_text(), encoding="utf-8")
        self.write()

    @property
    def config_path(self) -> Path:
        return self.root / "keel.yaml"

    def write(self) -> None:
        text = CONFIG.format(model=self.model, module=self.module, effect=self.effect)
        self.config_path.write_text(text, encoding="utf-8")

    def version(self) -> AgentVersion:
        """The version Backends.from_settings computes for this project (the same function, no I/O)."""
        config = load_config(self.config_path)
        settings = config.apply(Settings(home=self.root / ".keel"))
        registry = registry_from_config(config)
        return agent_version(
            settings,
            config=config,
            registry=registry,
            instructions=config.instructions,
            model_name=settings.model,
            tool_prices=tool_prices(config, registry),
        )


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")


def _set_model(p: Project) -> None:
    p.model = "scripted:other-scripted"
    p.write()


def _set_effect(p: Project) -> None:
    p.effect = "idempotent"
    p.write()


EDITS: dict[str, Callable[[Project], None]] = {
    "prompt": lambda p: _append(p.root / "prompt.md", "Be brief.\n"),
    "tool effect": _set_effect,
    "policy": lambda p: _append(p.root / "policy.yaml", "# reviewed\n"),
    "prices": lambda p: _append(p.root / "prices.yaml", "# reviewed\n"),
    "limits": lambda p: _append(p.root / "limits.yaml", "# reviewed\n"),
    "model": _set_model,
}
"""Each edit of the bundle, and the line `keel versions show A B` names it by."""
NAMED = {
    "prompt": "prompt: changed (+1 -0 lines)",
    "tool effect": "effect read -> idempotent",
    "policy": "policy: changed",
    "prices": "prices: changed",
    "limits": "limits: changed",
    "model": "model: scripted:keel-scripted -> scripted:other-scripted",
}


def test_the_id_names_the_agent_and_hashes_the_bundle(tmp_path: Path):
    version = Project(tmp_path / "p").version()
    name, _, digest = version.id.partition("@")
    assert name == "desk-v2" == version.name
    assert len(digest) == 12 and int(digest, 16) >= 0
    assert set(version.manifest["tools"]) == {"lookup_order", "read_file"}
    assert version.manifest["tools"]["lookup_order"]["effect"] == "read"


@pytest.mark.parametrize("edit", list(EDITS))
def test_every_edit_of_the_bundle_changes_the_id_and_names_what_changed(tmp_path: Path, edit: str):
    project = Project(tmp_path / "p")
    before = project.version()
    EDITS[edit](project)
    after = project.version()
    assert after.id != before.id and after.name == before.name
    changes = diff_manifests(before.manifest, after.manifest)
    assert len(changes) == 1 and NAMED[edit] in changes[0], changes


def test_edits_together_give_distinct_ids_and_the_same_bundle_elsewhere_the_same_id(tmp_path: Path):
    """Property-style: applying the edits one after another, every bundle has its own id; a copy of the
    project in another folder (paths differ, contents do not) has the same id."""
    project = Project(tmp_path / "p")
    seen = {project.version().id}
    for edit in EDITS.values():
        edit(project)
        version = project.version()
        assert version.id not in seen
        seen.add(version.id)
        moved = tmp_path / f"copy-{uuid.uuid4().hex[:6]}"
        shutil.copytree(project.root, moved)
        copy = _read_as_is(moved, project.module)
        assert copy.id == version.id


def _read_as_is(root: Path, module: str) -> AgentVersion:
    """The version of a project folder as it is (not rewritten by Project's constructor)."""
    p = Project.__new__(Project)
    p.root, p.module = root, module
    return p.version()


def test_the_id_is_the_same_in_another_process(tmp_path: Path):
    """The id Backends.from_settings computes in a fresh interpreter equals this process's."""
    project = Project(tmp_path / "p")
    code = (
        "import sys; from keel.app.backends import Backends; from keel.config import load_config; "
        "from keel.settings import Settings; "
        f"b = Backends.from_settings(Settings(home={str(tmp_path / 'home')!r}, embeddings='hashing'), "
        f"config=load_config({str(project.config_path)!r})); print(b.version.id)"
    )
    env = {"PATH": "/usr/bin:/bin", "LANGSMITH_TRACING": "false", "ANONYMIZED_TELEMETRY": "False"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip() == project.version().id


def test_the_diff_names_tools_added_and_removed():
    a = {"tools": {"x": {"effect": "read"}, "y": {"effect": "read", "resource": None}}}
    b = {"tools": {"y": {"effect": "read", "resource": "y:{id}"}, "z": {"effect": "external"}}}
    assert diff_manifests(a, b) == ["tool added: z (external)", "tool removed: x", "tool y: resource changed"]
    assert diff_manifests(a, a) == []


async def test_a_run_records_the_version_on_its_execution(make_keel):
    user = f"alice-{uuid.uuid4().hex[:8]}"
    async with make_keel(["done."]) as keel:
        version = keel.backends.version
        out = await keel.run("say done", user_id=user)
        execution = await keel.records.get_execution(out.execution_id)
        assert execution is not None and execution.version == version.id
        stored = await keel.records.get_version(version.id)
        assert stored is not None and stored.manifest == version.manifest and stored.name == "keel-v1"
        usage = {u.version_id: u for u in await keel.records.version_usage()}
        assert usage[version.id].executions >= 1 and usage[version.id].recorded


async def test_a_context_without_a_version_runs_as_the_agents_own(settings: Settings, workspace: Path):
    """The guarded agent fills in its own version when the caller's RunContext names none, and keeps
    one the caller names."""
    from langgraph.checkpoint.memory import InMemorySaver

    import keel
    from keel.context import RunContext

    user = f"bob-{uuid.uuid4().hex[:8]}"
    agent = keel.create_guarded_agent(
        FakeChatModel(["ok.", "ok."]),
        [],
        settings=settings.model_copy(update={"memory_enabled": False}),
        model_name="fake-model",
        checkpointer=InMemorySaver(),
    )
    async with agent:
        for ctx in (RunContext(user_id=user), RunContext(user_id=user, version="mine")):
            config = {"configurable": {"thread_id": str(uuid.uuid4())}}
            await agent.ainvoke({"messages": [("user", "hi")]}, config, context=ctx)
        rows = await agent.keel_backends.records.list_executions(user_id=user)
        assert sorted(r.version for r in rows) == sorted([agent.keel_backends.version.id, "mine"])


@pytest.fixture
def cli(tmp_path: Path):
    runner = CliRunner()
    env = {"KEEL_HOME": str(tmp_path / "home"), "KEEL_EMBEDDINGS": "hashing", "COLUMNS": "80"}

    def invoke(*args: str, **extra_env: str):
        return runner.invoke(app, list(args), env={**env, **extra_env}, prog_name="keel")

    return invoke


def test_versions_list_and_show_from_the_cli(cli, tmp_path: Path):
    prompt = tmp_path / "prompt.md"
    prompt.write_text("You are terse.\n", encoding="utf-8")
    assert cli("run", "--user", "alice", "list my files").exit_code == 0
    assert cli("run", "--user", "alice", "list my files").exit_code == 0
    assert cli("run", "--user", "alice", "list my files", KEEL_PROMPT_FILE=str(prompt)).exit_code == 0

    listed = cli("versions", "list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [r["executions"] for r in rows] == [1, 2]  # newest first
    newer, older = rows[0]["version_id"], rows[1]["version_id"]
    assert all(r["recorded"] and r["version_id"].startswith("keel-v1@") for r in rows)

    text = cli("versions", "list")
    lines = text.stdout.splitlines()
    assert lines[0].split("\t") == ["version", "executions", "first seen", "last seen", "manifest"]
    assert [line.split("\t")[:2] for line in lines[1:]] == [[newer, "1"], [older, "2"]]  # ids whole

    shown = cli("versions", "show", older)
    assert shown.exit_code == 0 and f"version: {older}" in shown.stdout
    assert "send_email\tbuiltin\ttransactional" in shown.stdout
    manifest = json.loads(cli("versions", "show", older, "--json").stdout)["manifest"]
    assert manifest["prompt"]["system"].startswith("You are keel")

    changed = cli("versions", "show", older, newer)
    assert changed.exit_code == 0
    assert changed.stdout.splitlines() == [f"{older} -> {newer}", "  prompt: changed (+1 -4 lines)"]
    as_json = json.loads(cli("versions", "show", older, newer, "--json").stdout)
    assert as_json == {"from": older, "to": newer, "changes": ["prompt: changed (+1 -4 lines)"]}

    missing = cli("versions", "show", "keel-v1@000000000000")
    assert missing.exit_code == 1
    assert missing.stderr.strip().splitlines() == [
        "error: no stored version 'keel-v1@000000000000'; `keel versions list` shows the versions seen"
    ]


async def test_save_version_writes_once(settings: Settings):
    records = Records.from_url(settings.records_url)
    try:
        await records.setup()
        vid = f"t-{uuid.uuid4().hex[:8]}@{uuid.uuid4().hex[:12]}"
        assert await records.save_version(vid, "t", {"a": 1}) is True
        assert await records.save_version(vid, "t", {"a": 2}) is False
        row = await records.get_version(vid)
        assert row is not None and row.manifest == {"a": 1}
    finally:
        await records.close()
