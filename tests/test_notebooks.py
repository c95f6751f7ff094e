"""The notebooks run offline on the embedded default (executed with nbmake, on the venv's kernel).

The three run concurrently, each in its own `pytest --nbmake` process, and must be stored without outputs.
They run on copies whose outputs are kept (`--overwrite`): those show results, never log lines (the
library logs at `warning` unless asked).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))

pytestmark = pytest.mark.slow


def test_the_three_notebooks_exist_without_outputs() -> None:
    assert {p.stem for p in NOTEBOOKS} >= {"quickstart", "policies", "operations"}
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        assert all(
            not c.get("outputs") and c.get("execution_count") is None for c in cells if "outputs" in c
        ), path


def test_the_notebooks_run_offline(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "LANGSMITH_TRACING": "false",
        "ANONYMIZED_TELEMETRY": "False",
        "KEEL_HOME": str(tmp_path),
    }
    env.pop("OPENAI_API_KEY", None)
    env.pop("KEEL_LOG_LEVEL", None)
    copies = [Path(shutil.copy(path, tmp_path / path.name)) for path in NOTEBOOKS]
    procs = {
        path.name: subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pytest",
                "--nbmake",
                "--overwrite",
                "-q",
                "-p",
                "no:cacheprovider",
                str(path),
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for path in copies
    }
    failures = {}
    for name, proc in procs.items():
        try:
            out, _ = proc.communicate(timeout=170)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        if proc.returncode != 0:
            failures[name] = out[-3000:]
    assert not failures, failures
    for path in copies:
        shown = "\n".join(_outputs(path))
        assert shown, path  # the results are shown
        assert '"level":' not in shown and '"event":' not in shown, (path, shown[:2000])


def _outputs(path: Path) -> list[str]:
    """Every text a notebook's executed cells printed or returned (stdout, stderr, results)."""
    texts: list[str] = []
    for cell in json.loads(path.read_text())["cells"]:
        for output in cell.get("outputs", []):
            text = output.get("text") or output.get("data", {}).get("text/plain") or ""
            texts.append("".join(text) if isinstance(text, list) else text)
    return texts
