"""The README's "Your own tool in under ten lines" is true: its blocks, written to a folder as their first
comment names them, make a project whose `keel run` line calls the tool offline (exit 0), in at most ten
lines of code, YAML and command."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KEEL = Path(sys.executable).with_name("keel")
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def _section() -> list[tuple[str, str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## Your own tool in under ten lines")
    body = text[start : text.index("\n## ", start + 3)]
    return _FENCE.findall(body)


def test_the_snippet_is_under_ten_lines() -> None:
    blocks = _section()
    assert [lang for lang, _ in blocks] == ["python", "yaml", "sh"]
    assert sum(len(body.strip().splitlines()) for _, body in blocks) <= 10


@pytest.mark.slow
def test_the_snippet_runs_offline(tmp_path: Path) -> None:
    *files, (_, command) = _section()
    for _, body in files:
        name = re.fullmatch(r"# (\S+)", body.splitlines()[0])
        assert name, f"the block must name its file in its first line: {body!r}"
        (tmp_path / name.group(1)).write_text(body, encoding="utf-8")
    line = command.strip()
    argv = shlex.split(line.split("#")[0])
    assert argv[:2] == ["keel", "run"] and "exit 0" in line
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
    env |= {"KEEL_HOME": str(tmp_path / ".keel"), "KEEL_EMBEDDINGS": "hashing"}
    done = subprocess.run(
        [KEEL, *argv[1:], "--json"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout)
    assert out["status"] == "succeeded" and out["path"].count("tool") == 1
    assert "- read_order A1: done — order A1: shipped" in out["answer"]
