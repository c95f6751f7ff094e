"""`keel init DIR` scaffolds a project that runs: `keel run` in it calls its example tool offline (exit 0),
its own test passes under pytest, its files validate, and no user file is ever overwritten."""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path

import pytest
import warm_python
from typer.testing import CliRunner

from keel.cli import app
from keel.config import load_config
from keel.costs import PriceTable
from keel.hotstate import LimitsPolicy
from keel.policies import PolicyMatrix
from keel.settings import shipped_file

KEEL = Path(sys.executable).with_name("keel")


def _env(tmp_path: Path) -> dict[str, str]:
    """The environment a reader has (no KEEL_* of the test run), runs kept under tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
    return env | {"KEEL_HOME": str(tmp_path / "home"), "KEEL_EMBEDDINGS": "hashing"}


def _init(*args: str):
    return CliRunner().invoke(app, ["init", *args])


def _name() -> str:
    return f"agent-{uuid.uuid4().hex[:8]}"


@pytest.mark.slow
def test_init_then_keel_run_works_offline_and_the_generated_test_passes(tmp_path: Path) -> None:
    project = tmp_path / _name()
    done = warm_python.run([sys.executable, KEEL, "init", str(project)], env=_env(tmp_path), timeout=120)
    assert done.returncode == 0, done.stderr
    package = project.name.replace("-", "_")
    assert f"created\t{project}/{package}/tools.py" in done.stdout.splitlines()
    assert done.stdout.splitlines()[-1] == (f'next\tcd {project} && keel run "lookup_order order_id=A1"')

    run = warm_python.run(
        [sys.executable, KEEL, "run", "--json", "--user", "alice", "lookup_order order_id=A1"],
        cwd=project,
        env=_env(tmp_path),
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["status"] == "succeeded" and out["path"].count("tool") == 1
    assert "- lookup_order A1: done — order A1: shipped" in out["answer"]

    tests = warm_python.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_agent.py"],
        cwd=project,
        env=_env(tmp_path),
        timeout=180,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "1 passed" in tests.stdout


def test_the_scaffold_validates_and_uses_the_name(tmp_path: Path) -> None:
    project = tmp_path / "desk"
    name = _name()
    result = _init(str(project), "--name", name, "--json")
    assert result.exit_code == 0, result.output
    done = json.loads(result.stdout)
    package = name.replace("-", "_")
    assert (done["name"], done["package"], done["kept"]) == (name, package, [])
    assert set(done["created"]) == {
        ".gitignore", "README.md", "keel.yaml", "pyproject.toml", "prompts/system.md",
        "policies/default.yaml", "policies/prices.yaml", "policies/limits.yaml",
        f"{package}/__init__.py", f"{package}/tools.py", "tests/test_agent.py",
    }  # fmt: skip
    config = load_config(project / "keel.yaml")
    assert config.agent.name == name and config.agent.prompt == project / "prompts" / "system.md"
    assert config.model == "scripted:keel-scripted"
    assert [(t.target, t.effect, t.resource) for t in config.tools] == [
        (f"{package}.tools:lookup_order", "read", "order:{order_id}")
    ]
    matrix = PolicyMatrix.load(config.policy)
    assert matrix.decide("user", "lookup_order", "order:A1").effect == "allow"
    assert matrix.decide("user", "delete_file", "own:x").effect == "deny"
    assert matrix.decide("admin", "anything", "x").effect == "allow"
    PriceTable.load(config.prices)
    LimitsPolicy.load(config.limits)
    assert config.prices.read_bytes() == shipped_file("prices.yaml").read_bytes()
    assert "openai:gpt-4o-mini" in (project / "keel.yaml").read_text()
    assert "__NAME__" not in (project / "README.md").read_text()


def test_a_folder_with_files_is_refused_and_force_never_overwrites(tmp_path: Path) -> None:
    project = tmp_path / _name()
    project.mkdir()
    (project / "keel.yaml").write_text("mine\n", encoding="utf-8")
    refused = _init(str(project))
    assert refused.exit_code == 1
    assert refused.stderr.strip() == (
        f"error: {project} is not empty; pass --force to add the missing files (none is overwritten)"
    )
    assert sorted(p.name for p in project.iterdir()) == ["keel.yaml"]

    forced = _init(str(project), "--force")
    assert forced.exit_code == 0, forced.output
    assert f"kept\t{project}/keel.yaml\t(exists)" in forced.stdout.splitlines()
    assert (project / "keel.yaml").read_text() == "mine\n"
    assert (project / "prompts" / "system.md").is_file()


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("json", "a module named 'json' is importable already"),
        ("keel", "a module named 'keel' is importable already"),
        ("123", "agent name '123': letters, digits"),
        ("a: b", "agent name 'a: b': letters, digits"),
        ("class", "cannot make a Python package name of 'class'"),
    ],
)
def test_a_name_whose_package_would_clash_is_refused(tmp_path: Path, name: str, reason: str) -> None:
    result = _init(str(tmp_path / "p"), "--name", name)
    assert result.exit_code == 1
    assert reason in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "p").exists()
