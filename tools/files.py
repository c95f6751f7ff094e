"""File tools over the workspace: read, list, write, delete, search notes."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from keel.context import RunContext
from keel.tools.spec import ToolContext, ToolInputError, ToolSpec
from keel.tools.workspace import Workspace

__all__ = ["FILE_TOOLS"]

_TEXT_SUFFIXES = {".md", ".txt", ".rst", ".csv", ".json", ".yaml", ".yml", ".log"}


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=1_000_000)


class ReadFileArgs(_Args):
    path: str = Field(description="File path relative to the workspace root; `~/x` is your own home.")
    max_chars: int = Field(default=20_000, ge=1, le=200_000, description="Most characters to return.")


class ListFilesArgs(_Args):
    path: str = Field(default="~", description="Folder relative to the workspace root; `~` is your home.")


class WriteFileArgs(_Args):
    path: str = Field(description="File path relative to the workspace root; `~/x` is your own home.")
    content: str = Field(description="The full new content of the file.")


class DeleteFileArgs(_Args):
    path: str = Field(description="File path relative to the workspace root.")


class SearchNotesArgs(_Args):
    query: str = Field(min_length=1, max_length=200, description="Text to look for (case-insensitive).")
    path: str = Field(default="~", description="Folder to search; `~` is your home.")


def _path_resource(args: ReadFileArgs, run: RunContext, ws: Workspace) -> str:
    return ws.resolve(args.path, run.user_id).resource


def _resolve(args: object, ctx: ToolContext) -> tuple[Path, str]:
    target = ctx.workspace.resolve(args.path, ctx.run.user_id)  # type: ignore[attr-defined]
    ctx.workspace.home(ctx.run.user_id)
    return target.absolute, target.relative


def _threaded(body: Callable[[Any, ToolContext], str]) -> Callable[[Any, ToolContext], Awaitable[str]]:
    """File work blocks, so each tool's body runs in a worker thread, never on the event loop."""

    async def run(args: Any, ctx: ToolContext) -> str:
        return await asyncio.to_thread(body, args, ctx)

    run.__name__ = body.__name__
    return run


@_threaded
def _read_file(args: ReadFileArgs, ctx: ToolContext) -> str:
    path, rel = _resolve(args, ctx)
    if not path.is_file():
        raise ToolInputError(f"no file at {rel}")
    text = path.read_text(encoding="utf-8", errors="replace")
    if len(text) > args.max_chars:
        return text[: args.max_chars] + f"\n[… truncated: {len(text) - args.max_chars} more characters]"
    return text


@_threaded
def _list_files(args: ListFilesArgs, ctx: ToolContext) -> str:
    path, rel = _resolve(args, ctx)
    if not path.is_dir():
        raise ToolInputError(f"no folder at {rel}")
    entries = sorted(path.iterdir(), key=lambda p: p.name)
    lines = [f"{e.name}/" if e.is_dir() else f"{e.name}\t{e.stat().st_size} bytes" for e in entries[:500]]
    return f"{rel}:\n" + ("\n".join(lines) if lines else "(empty)")


def _atomic_write(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@_threaded
def _write_file(args: WriteFileArgs, ctx: ToolContext) -> str:
    path, rel = _resolve(args, ctx)
    if path.is_dir():
        raise ToolInputError(f"{rel} is a folder")
    _atomic_write(path, args.content)
    return f"wrote {len(args.content.encode())} bytes to {rel}"


@_threaded
def _delete_file(args: DeleteFileArgs, ctx: ToolContext) -> str:
    path, rel = _resolve(args, ctx)
    if not path.is_file():
        raise ToolInputError(f"no file at {rel}")
    path.unlink()
    return f"deleted {rel}"


@_threaded
def _search_notes(args: SearchNotesArgs, ctx: ToolContext) -> str:
    path, rel = _resolve(args, ctx)
    if not path.is_dir():
        raise ToolInputError(f"no folder at {rel}")
    needle, hits = args.query.lower(), []
    for file in sorted(path.rglob("*")):
        if not file.is_file() or file.suffix.lower() not in _TEXT_SUFFIXES:
            continue
        for number, line in enumerate(file.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if needle in line.lower():
                hits.append(
                    f"{file.relative_to(ctx.workspace.root).as_posix()}:{number}: {line.strip()[:200]}"
                )
                if len(hits) >= 50:
                    return "\n".join(hits)
    return "\n".join(hits) if hits else f"no notes under {rel} mention {args.query!r}"


FILE_TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        name="read_file",
        description="Read a text file from the workspace.",
        args_model=ReadFileArgs,
        run=_read_file,
        resource=_path_resource,
        effect="read",
        timeout_s=10.0,
    ),
    ToolSpec(
        name="list_files",
        description="List the files in a workspace folder.",
        args_model=ListFilesArgs,
        run=_list_files,
        resource=_path_resource,
        effect="read",
        timeout_s=10.0,
    ),
    ToolSpec(
        name="write_file",
        description="Create or replace a text file in the workspace.",
        args_model=WriteFileArgs,
        run=_write_file,
        resource=_path_resource,
    ),
    ToolSpec(
        name="delete_file",
        description="Delete a file from the workspace.",
        args_model=DeleteFileArgs,
        run=_delete_file,
        resource=_path_resource,
    ),
    ToolSpec(
        name="search_notes",
        description="Search text notes under a workspace folder for a phrase.",
        args_model=SearchNotesArgs,
        run=_search_notes,
        resource=_path_resource,
        effect="read",
        timeout_s=15.0,
    ),
)
