"""`keel workspace`: the files the file tools see (ls, get, put), with the tools' own path rules.

Paths are relative to the workspace root (`shared/…`, `home/<user>/…`); `~/x` is `home/<user>/x` and
needs `--user`. A path that leaves the root (`..`, absolute, a symlink out) is refused, as it is for a run.
"""

from __future__ import annotations

import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from keel.cli._common import JsonOpt, fail, new_app, out, print_json, reason, show
from keel.render import Grid

__all__ = ["workspace_app"]

workspace_app = new_app("The workspace the file tools work in: ls, get, put, seed.")
_USER = typer.Option(None, "--user", help="Whose `~` a path starting with `~/` means.")


def _workspace() -> Any:
    from keel.settings import Settings
    from keel.tools.workspace import Workspace

    return Workspace(Settings().workspace_root)


def _resolve(path: str, user: str | None) -> Any:
    """The workspace path, checked like a tool's argument; any refusal is one line and exit 1."""
    text = path.strip()
    if user is None and (text == "~" or text.startswith("~/")):
        fail(f"{path!r} is in a user's home: give --user")
    try:
        if user is not None:
            from keel.context import RunContext

            user = RunContext(user_id=user).user_id  # validates the id like a run would
        return _workspace().resolve(path, user or "-")
    except Exception as exc:  # noqa: BLE001 - every refusal is one line
        fail(reason(exc))


def _entry(path: Path, root: Path) -> dict[str, Any]:
    info = path.lstat()
    kind = "link" if path.is_symlink() else "dir" if path.is_dir() else "file"
    return {
        "path": path.relative_to(root).as_posix(),
        "kind": kind,
        "bytes": info.st_size if kind == "file" else None,
        "modified": datetime.fromtimestamp(info.st_mtime, UTC).strftime("%Y-%m-%d %H:%M:%S"),
    }


def _atomic_write(path: Path, data: bytes) -> None:
    """Write whole or not at all: a run reading the file never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@workspace_app.command("ls")
def workspace_ls(
    path: str = typer.Argument(".", help="A folder (or file) in the workspace."),
    user: str | None = _USER,
    recursive: bool = typer.Option(False, "-r", "--recursive", help="Everything below PATH."),
    as_json: bool = JsonOpt,
) -> None:
    """The entries of a workspace folder, by path from the root (in a pipe: tab-separated lines)."""
    target = _resolve(path, user)
    root = _workspace().root
    if not target.absolute.exists():
        fail(f"nothing at {target.relative} in the workspace ({root})")
    if target.absolute.is_dir():
        found = target.absolute.rglob("*") if recursive else target.absolute.iterdir()
        entries = [_entry(p, root) for p in sorted(found)]
    else:
        entries = [_entry(target.absolute, root)]
    if as_json:
        print_json(out, {"root": str(root), "entries": entries})
        return
    rows = [
        (e["path"], e["kind"], "" if e["bytes"] is None else str(e["bytes"]), e["modified"]) for e in entries
    ]
    title = str(root) if target.relative == "." else f"{root}/{target.relative}"
    show(out, Grid(title, ("path", "kind", "bytes", "modified (UTC)"), rows))


@workspace_app.command("get")
def workspace_get(
    path: str = typer.Argument(..., help="A file in the workspace."),
    user: str | None = _USER,
    as_json: bool = JsonOpt,
) -> None:
    """Print a workspace file (as it is, to stdout)."""
    target = _resolve(path, user)
    if not target.absolute.is_file():
        fail(f"no file at {target.relative} in the workspace")
    data = target.absolute.read_bytes()
    if as_json:
        text = data.decode("utf-8", errors="replace")
        print_json(out, {"path": target.relative, "resource": target.resource, "content": text})
        return
    typer.echo(data, nl=False)  # the bytes as they are


@workspace_app.command("put")
def workspace_put(
    path: str = typer.Argument(..., help="Where in the workspace, e.g. shared/notes.md or ~/draft.md."),
    source: Path | None = typer.Argument(None, help="A local file to copy (default: stdin)."),
    user: str | None = _USER,
    as_json: bool = JsonOpt,
) -> None:
    """Write a workspace file from a local file or stdin (parent folders are created)."""
    target = _resolve(path, user)
    if target.absolute.is_dir() or target.relative == ".":
        fail(f"{target.relative} is a folder")
    try:
        data = source.read_bytes() if source is not None else sys.stdin.buffer.read()
        _atomic_write(target.absolute, data)
    except OSError as exc:
        fail(reason(exc))
    result = {"path": target.relative, "resource": target.resource, "bytes": len(data)}
    if as_json:
        print_json(out, result)
    else:
        out.out(f"wrote {len(data)} bytes to {target.relative} ({target.resource})", highlight=False)


@workspace_app.command("seed")
def workspace_seed(as_json: bool = JsonOpt) -> None:
    """Write the demo's files (shared/handbook.md, home/alice/old-draft.md), as `keel demo` and
    `make dev` do."""
    from keel.app.demo import seed_demo_files

    root = _workspace().root
    try:
        files = seed_demo_files(root)
    except OSError as exc:
        fail(reason(exc))
    if as_json:
        print_json(out, {"root": str(root), "files": files})
    else:
        for name in files:
            out.out(f"seeded {name}", highlight=False)
