"""`keel init DIR`: scaffold a runnable keel project (config, prompt, policy, prices, limits, a tool, a test).

The files come from keel/project-template (package data), with `__NAME__` (the agent's name) and
`__PACKAGE__` (its Python package) filled in; prices and limits are copies of the ones keel ships, so a new
project starts from what keel itself runs on. A user's file is never overwritten: a folder with files in it
is refused unless `--force`, and even then every file that exists is kept (and listed as kept).
"""

from __future__ import annotations

import importlib.util
import keyword
import re
import shlex
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import typer

from keel.cli._common import JsonOpt, fail, out, print_json
from keel.render import plain

__all__ = ["register", "scaffold", "Scaffold", "package_name"]

_NAME = "__NAME__"
_PACKAGE = "__PACKAGE__"
_RENAMES = {"PACKAGE": _PACKAGE, "gitignore": ".gitignore"}
"""Template paths that change on the way out (a dotfile is not package data; the package is the user's)."""
_SHIPPED = {"policies/prices.yaml": "prices.yaml", "policies/limits.yaml": "limits.yaml"}
"""Project files copied from keel's own shipped data files (keel.settings.shipped_file)."""
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9 _.-]*")
"""An agent name that goes into keel.yaml, the README and the prompt as it is (no YAML quoting needed)."""
EXAMPLE_TASK = "lookup_order order_id=A1"
"""A task the scaffold's offline model turns into a call of its example tool."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Scaffold:
    """What `keel init` did."""

    directory: Path
    name: str
    package: str
    created: list[str] = field(default_factory=list)
    """Files written, relative to `directory`."""
    kept: list[str] = field(default_factory=list)
    """Files that existed and were left as they were (`--force`)."""

    @property
    def next_command(self) -> str:
        run = f'keel run "{EXAMPLE_TASK}"'
        if self.directory.resolve() == Path.cwd().resolve():
            return run
        return f"cd {shlex.quote(str(self.directory))} && {run}"

    def as_dict(self) -> dict[str, object]:
        return {
            "directory": str(self.directory),
            "name": self.name,
            "package": self.package,
            "created": self.created,
            "kept": self.kept,
            "next": self.next_command,
        }


class InitError(ValueError):
    """The project cannot be scaffolded as asked (one line)."""


def package_name(name: str) -> str:
    """The Python package of an agent called `name` (`demo-agent` → `demo_agent`); InitError when it cannot
    be one, or when a module of that name is importable already (it would shadow, or be shadowed by, the
    project's tools: keel appends the config's folder to sys.path)."""
    if not _NAME_RE.fullmatch(name):
        raise InitError(
            f"agent name {name!r}: letters, digits, spaces, '_', '.' and '-', starting with a letter"
        )
    package = re.sub(r"[^0-9a-zA-Z_]+", "_", name.strip()).strip("_").lower()
    if not package.isidentifier() or keyword.iskeyword(package):
        raise InitError(f"cannot make a Python package name of {name!r}; pass --name with letters")
    if importlib.util.find_spec(package) is not None:
        raise InitError(
            f"a module named {package!r} is importable already; pick another --name (the tools' package "
            "must not clash)"
        )
    return package


def _template_files() -> list[tuple[str, bytes]]:
    """(relative path in the project, content) of every template file."""
    root = resources.files("keel").joinpath("project-template")
    found: list[tuple[str, bytes]] = []

    def walk(node, prefix: str) -> None:  # noqa: ANN001 - an importlib.resources Traversable
        for child in sorted(node.iterdir(), key=lambda c: c.name):
            if child.name == "__pycache__":
                continue
            rel = f"{prefix}{_RENAMES.get(child.name, child.name)}"
            if child.is_dir():
                walk(child, rel + "/")
            else:
                found.append((rel, child.read_bytes()))

    walk(root, "")
    return found


def scaffold(directory: Path, *, name: str | None = None, force: bool = False) -> Scaffold:
    """Write a new project into `directory` (created if missing); InitError when it cannot."""
    from keel.settings import shipped_file

    name = name or directory.resolve().name
    package = package_name(name)
    if directory.exists() and not directory.is_dir():
        raise InitError(f"{directory} exists and is not a folder")
    if directory.is_dir() and any(directory.iterdir()) and not force:
        raise InitError(
            f"{directory} is not empty; pass --force to add the missing files (none is overwritten)"
        )
    files = [
        (
            rel.replace(_PACKAGE, package),
            data.replace(_NAME.encode(), name.encode()).replace(_PACKAGE.encode(), package.encode()),
        )
        for rel, data in _template_files()
    ]
    files += [(rel, shipped_file(src).read_bytes()) for rel, src in _SHIPPED.items()]
    done = Scaffold(directory=directory, name=name, package=package)
    for rel, data in sorted(files):
        target = directory / rel
        if target.exists():
            done.kept.append(rel)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "xb") as f:  # never over a file that appeared meanwhile
            f.write(data)
        done.created.append(rel)
    return done


def init(
    directory: Path = typer.Argument(..., help="The project folder (created if missing)."),
    name: str | None = typer.Option(
        None,
        "--name",
        help="The agent's name (default: the folder's); its package is the name in snake_case.",
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="Add the missing files to a folder that is not empty (existing files are kept).",
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Scaffold a runnable project in DIRECTORY: keel.yaml, a prompt, a policy, prices and limits, a Python
    package with one example tool, and a test that runs the agent offline. Never overwrites a file.
    Exit codes: 0 created; 1 refused (a folder not empty, a clashing package name); 2 usage error."""
    try:
        done = scaffold(directory, name=name, force=force)
    except InitError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{directory}: {exc.strerror or exc}")
    if as_json:
        print_json(out, done.as_dict())
        return
    for rel in done.created:
        plain(out, f"created\t{directory / rel}")
    for rel in done.kept:
        plain(out, f"kept\t{directory / rel}\t(exists)")
    plain(out, f"next\t{done.next_command}")


def register(app: typer.Typer) -> None:
    """Add `keel init` to the root app."""
    app.command()(init)
