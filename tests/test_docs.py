"""The docs cannot drift: the README stays short, every link between pages resolves, every `keel` command
the docs show parses (the README tour's commands run, offline, with the exit codes they claim), and the
configuration page is what `scripts/gen_config_docs.py` generates from `Settings` today."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import warm_python
from typer.testing import CliRunner

from keel.cli import app
from keel.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS, ROOT / "benchmarks" / "RESULTS.md"]
REQUIRED = {"architecture", "security", "operations", "deployment", "configuration"}
GEN = [sys.executable, str(ROOT / "scripts" / "gen_config_docs.py")]

_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


def _shell_lines(text: str) -> list[str]:
    """The `keel …` lines of the sh code blocks of a page."""
    return [
        line.strip()
        for lang, body in _FENCE.findall(text)
        if lang in ("sh", "console", "")
        for line in body.splitlines()
        if line.strip().removeprefix("$ ").startswith("keel ")
    ]


def test_readme_is_under_12_kb_and_links_every_required_page() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.encode()) < 12 * 1024, f"README.md is {len(text.encode())} bytes; move detail to docs/"
    assert {p.stem for p in DOCS} >= REQUIRED
    linked = {Path(target.split("#")[0]).stem for target in _LINK.findall(text)}
    assert linked >= REQUIRED, f"README does not link {REQUIRED - linked}"
    for command in ("make run", "make test", "make dev"):
        assert command in text


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(page: Path) -> None:
    broken = []
    for target in _LINK.findall(_FENCE.sub("", page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):  # http(s)://, mailto: … are not checked offline
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no file {dest}")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.name}")
    assert not broken, broken


def test_the_anchor_rule_matches_github() -> None:
    assert _slug("Development server: `make dev`") == "development-server-make-dev"
    assert _slug("Guarantees, and the test that proves each") == "guarantees-and-the-test-that-proves-each"


def _command_paths(line: str) -> list[list[str]]:
    """`keel memory list|search QUERY|forget` → [memory list], [memory search], [memory forget]."""
    words = shlex.split(line.removeprefix("$ ").split("#")[0].replace("[", " ").replace("]", " "))[1:]
    paths = [[words[0]]]
    if len(words) > 1:
        subs = [part for part in words[1].split("|") if re.fullmatch(r"[a-z][a-z-]*", part)]
        paths = [[words[0], sub] for sub in subs] or paths
    if len(words) > 2 and "|" in words[1]:  # `list|search QUERY|forget`: the alternative after a placeholder
        paths += [[words[0], part] for part in words[2].split("|")[1:] if re.fullmatch(r"[a-z]+", part)]
    return paths


def _problems(line: str) -> list[str]:
    """What is wrong with one documented `keel …` line: an unknown command, a missing subcommand, an
    option the command does not take."""
    options = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*|-[a-z])(?=[\s\]=]|$)", line.split("#")[0]))
    problems = []
    for path in _command_paths(line):
        result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200", "TERM": "dumb"})
        if result.exit_code != 0:
            problems.append(f"keel {' '.join(path)}: no such command")
            continue
        if re.search(r"─ Commands ─|^Commands:", result.output, re.M):
            problems.append(f"keel {' '.join(path)}: needs a subcommand")
        for opt in sorted(options):
            if not re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", result.output):
                problems.append(f"keel {' '.join(path)}: no option {opt}")
    return problems


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_every_keel_command_in_the_docs_parses(page: Path) -> None:
    lines = _shell_lines(page.read_text(encoding="utf-8"))
    problems = [f"{line!r}: {problem}" for line in lines for problem in _problems(line)]
    assert not problems, problems


def test_the_command_check_sees_what_is_wrong() -> None:
    assert _problems("keel approvals approve ID --approver ops") == []
    assert _problems("keel approvals approve ID --no-such-option") == [
        "keel approvals approve: no option --no-such-option"
    ]
    assert _problems("keel approvals") == ["keel approvals: needs a subcommand"]
    assert _problems("keel nosuch --json") == ["keel nosuch: no such command"]
    assert _problems("keel memory list|search QUERY|forget --user alice") == []


def _tour() -> list[tuple[str, int]]:
    text = README.read_text(encoding="utf-8")
    tour = text[text.index("## A five-minute tour") :]
    tour = tour[: tour.index("\n## ", 3)]
    out = []
    for line in _shell_lines(tour):
        claimed = re.search(r"#\s*exit (\d+)", line)
        out.append((line.split("#")[0].strip(), int(claimed.group(1)) if claimed else 0))
    return out


@pytest.mark.slow
def test_the_readme_tour_runs_offline_with_the_exit_codes_it_claims(tmp_path: Path) -> None:
    tour = _tour()
    assert len(tour) >= 5 and any(cmd.startswith("keel approvals approve") for cmd, _ in tour)
    keel = Path(sys.executable).with_name("keel")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}  # the defaults, as a reader has
    env |= {"KEEL_HOME": str(tmp_path / ".keel"), "KEEL_LOG_LEVEL": "warning", "KEEL_EMBEDDINGS": "hashing"}
    for command, expected in tour:
        argv = shlex.split(command)
        if "ID" in argv:  # the placeholder the reader copies from `keel approvals list`
            listed = warm_python.run([sys.executable, keel, "approvals", "list", "--json"], env=env, cwd=ROOT)
            assert listed.returncode == 0, listed.stderr
            argv[argv.index("ID")] = json.loads(listed.stdout)[0]["approval_id"]
        done = warm_python.run([sys.executable, keel, *argv[1:]], env=env, cwd=ROOT, timeout=120)
        assert done.returncode == expected, f"{command}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"


def test_configuration_page_is_generated_from_settings() -> None:
    done = subprocess.run([*GEN, "--check"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for name, field in Settings.model_fields.items():
        assert f"`KEEL_{name.upper()}`" in page
        assert " ".join(field.description.split()).split("`")[0][:40] in page


def test_a_stale_configuration_page_is_caught(tmp_path: Path) -> None:
    page = tmp_path / "configuration.md"
    assert subprocess.run([*GEN, "--output", str(page)], cwd=ROOT, capture_output=True).returncode == 0
    assert subprocess.run([*GEN, "--check", "--output", str(page)], cwd=ROOT).returncode == 0
    page.write_text(page.read_text().replace("`KEEL_MAX_STEPS`", "`KEEL_MAX_STEP`"))
    done = subprocess.run([*GEN, "--check", "--output", str(page)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 1 and "stale" in done.stderr
