"""Check keel's import contract (`.importlinter`) on the installed layout: `make imports`.

grimp walks a package's folder, and in the repository `keel/` does not hold graphs/, nodes/, tools/,
policies/ and memory/ (they install as keel.graphs, ... through pyproject's package-dir). So the tree is
copied, built into a wheel, unpacked, and lint-imports runs over the unpacked `keel` (from a temporary
directory, so the checkout's own `keel/` is not found first). Exit status and output are lint-imports'.

    python scripts/lint_imports.py [--root TREE]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("keel", "graphs", "nodes", "tools", "policies", "memory")
FILES = ("pyproject.toml", "README.md", ".importlinter")


def build(root: Path, work: Path) -> Path:
    """The wheel of the tree at `root`, unpacked under `work`: the folder to put on PYTHONPATH."""
    src, dist, site = work / "src", work / "dist", work / "site"
    src.mkdir()
    for name in FILES:
        shutil.copy(root / name, src / name)
    for folder in FOLDERS:
        shutil.copytree(root / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist)]
    done = subprocess.run([*pip, str(src)], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"building the wheel failed:\n{done.stdout}{done.stderr}")
    (wheel,) = dist.glob("keel-*.whl")
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    return site


def lint(root: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run lint-imports with `root`'s contract over `root`'s installed layout."""
    binary = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    with tempfile.TemporaryDirectory(prefix="keel-imports-") as tmp:
        work = Path(tmp)
        site = build(root, work)
        env = {**os.environ, "PYTHONPATH": str(site)}
        config = work / "src" / ".importlinter"
        return subprocess.run(
            [binary, "--config", str(config), "--no-cache", "--no-logo"],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the source tree (default: this checkout)")
    done = lint(parser.parse_args().root.resolve())
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
