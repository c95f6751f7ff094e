"""keel's layers import downward only: the import contract (`.importlinter`) holds on the installed layout,
and an upward import breaks it (the same check as `make imports`, scripts/lint_imports.py)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("lint_imports", ROOT / "scripts" / "lint_imports.py")
assert _spec is not None and _spec.loader is not None
lint_imports = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lint_imports)

pytestmark = pytest.mark.slow


def test_the_import_contract_holds() -> None:
    done = lint_imports.lint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 4 kept, 0 broken." in done.stdout, done.stdout


def test_an_upward_import_breaks_the_contract(tmp_path: Path) -> None:
    """A node importing the application layer (the cycle issue 12 removed) is reported, file and line."""
    for name in lint_imports.FILES:
        shutil.copy(ROOT / name, tmp_path / name)
    for folder in lint_imports.FOLDERS:
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    recall = tmp_path / "nodes" / "recall.py"
    recall.write_text(recall.read_text() + "\nfrom keel.app.backends import Backends  # noqa: E402\n")
    done = lint_imports.lint(tmp_path)
    assert done.returncode != 0
    assert "keel.nodes is not allowed to import keel.app" in done.stdout, done.stdout
    assert "keel.nodes.recall -> keel.app.backends" in done.stdout, done.stdout


def test_every_module_of_keel_has_a_layer() -> None:
    """A module the contract does not name is unconstrained: every top-level module and package of the
    installed `keel` (keel/*, plus the mapped graphs/ nodes/ tools/ policies/ memory/) sits in a layer."""
    text = (ROOT / ".importlinter").read_text(encoding="utf-8")
    block = text.split("layers =", 1)[1].split("\n[", 1)[0]
    named = {
        m.strip()
        for line in block.splitlines()
        if line.strip() and not line.strip().startswith("#")
        for m in line.replace("|", ":").split(":")
    }
    top = {f"keel.{p.stem}" for p in (ROOT / "keel").glob("*.py") if p.stem != "__init__"}
    top |= {f"keel.{p.parent.name}" for p in (ROOT / "keel").glob("*/__init__.py")}
    top |= {f"keel.{name}" for name in ("graphs", "nodes", "tools", "policies", "memory")}
    covered = {m for m in top if any(n == m or n.startswith(m + ".") for n in named)}
    missing = sorted(top - covered - {"keel.testing"})  # keel.testing: its own contract (no production use)
    assert not missing, f"modules in no layer of .importlinter: {missing}"
