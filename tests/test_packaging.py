"""The built wheel puts one name in site-packages, `keel`, and carries every module and data file of the tree.

The repository keeps the design's folders (graphs/, nodes/, tools/, policies/, memory/) at the top; they
install as keel.graphs, keel.nodes, ... (pyproject's package-dir). A folder added to the tree but not to
pyproject's package list would be missing from the wheel: the second test catches it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAPPED = {"graphs": "keel/graphs", "nodes": "keel/nodes", "tools": "keel/tools", "policies": "keel/policies",
          "memory": "keel/memory", "keel": "keel"}  # fmt: skip

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built from a copy of the tree: setuptools' build/ folder neither dirties the checkout nor leaks stale
    modules into the wheel."""
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheel")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for folder in MAPPED:
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*pip, "-w", str(out), str(src)], check=True, capture_output=True, timeout=300)
    (built,) = out.glob("keel-*.whl")
    return built


def test_the_wheel_installs_only_keel(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        (top_level,) = [n for n in names if n.endswith(".dist-info/top_level.txt")]
        assert z.read(top_level).decode().split() == ["keel"]
    assert {n.split("/")[0] for n in names if not n.startswith("keel-")} == {"keel"}


def test_every_module_and_data_file_of_the_tree_is_in_the_wheel(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    expected = set()
    for folder, installed in MAPPED.items():
        for f in (ROOT / folder).rglob("*"):
            if f.is_file() and f.suffix in {".py", ".yaml", ".ini", ".mako"} and "__pycache__" not in f.parts:
                expected.add(f"{installed}/{f.relative_to(ROOT / folder).as_posix()}")
    missing = sorted(expected - names)
    assert not missing, f"in the tree but not in the wheel (add the package to pyproject.toml): {missing}"


def _run_unpacked(wheel: Path, tmp_path: Path, code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -c code args` over the wheel unpacked in tmp_path/site, away from the repository."""
    with zipfile.ZipFile(wheel) as z:
        z.extractall(tmp_path / "site")
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_the_wheel_runs_on_its_own(wheel: Path, tmp_path: Path) -> None:
    """Unpacked away from the repository, the wheel's keel imports its graph and finds its shipped policy."""
    code = (
        "import keel.graphs.agent as a, keel.settings as s, keel.policies.matrix as m;"
        "print(a.__file__); print(s.Settings().policy_file);"
        "print(len(m.PolicyMatrix.load(m.DEFAULT_POLICY).rules))"
    )
    done = _run_unpacked(wheel, tmp_path, code)
    out = done.stdout.splitlines()
    site = str(tmp_path / "site")
    assert out[0].startswith(site) and out[1].startswith(site), out
    assert (tmp_path / "site" / "keel" / "policies" / "default.yaml").is_file()


def test_keel_init_finds_its_templates_in_the_wheel(wheel: Path, tmp_path: Path) -> None:
    """The project template is package data: `keel init` from the installed wheel writes every file."""
    code = (
        "import sys, keel.cli.init as i; from pathlib import Path;"
        "done = i.scaffold(Path(sys.argv[1]), name='wheel-check');"
        "print(i.__file__); print(len(done.created))"
    )
    done = _run_unpacked(wheel, tmp_path, code, str(tmp_path / "proj"))
    where, count = done.stdout.splitlines()
    assert where.startswith(str(tmp_path / "site")) and int(count) == 11
    assert (tmp_path / "proj" / "wheel_check" / "tools.py").is_file()
