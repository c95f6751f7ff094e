"""A notes MCP server (the `mcp` SDK's FastMCP) over a folder of markdown notes, shipped with the example.

Run by keel over stdio (keel.yaml: `command: python, args: [server.py]`), or over streamable HTTP:
`python server.py --http 8765` (then `url: http://127.0.0.1:8765/mcp`). The folder is $NOTES_DIR, else
`notes/` beside this file.

`write_note` is keel's `external` effect: it takes an `idempotency_key` (keel fills it, the model never sees
it) and stores it with the note, so a call replayed after a crash writes once.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from mcp.server.fastmcp import FastMCP

NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
server = FastMCP("notes", log_level="WARNING")


def _folder() -> Path:
    folder = Path(os.environ.get("NOTES_DIR") or Path(__file__).parent / "notes")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _path(name: str) -> Path:
    if not NAME.match(name):
        raise ValueError(f"bad note name {name!r}: letters, digits, - and _ only")
    return _folder() / f"{name}.md"


@server.tool()
def list_notes() -> str:
    """List the names of all notes, one per line."""
    names = sorted(p.stem for p in _folder().glob("*.md"))
    return "\n".join(names) if names else "(no notes)"


@server.tool()
def read_note(name: str) -> str:
    """Read one note by its name (as list_notes shows it)."""
    path = _path(name)
    if not path.is_file():
        raise ValueError(f"no note named {name!r}")
    return path.read_text(encoding="utf-8")


@server.tool()
def write_note(name: str, text: str, idempotency_key: str) -> str:
    """Create or replace a note. One idempotency_key writes once: a repeat is acknowledged, not redone."""
    path = _path(name)
    keys_file = _folder() / ".keys.json"
    keys = json.loads(keys_file.read_text(encoding="utf-8")) if keys_file.is_file() else {}
    if idempotency_key in keys:
        return f"note {keys[idempotency_key]!r} already written by this request (not written again)"
    path.write_text(text, encoding="utf-8")
    keys[idempotency_key] = name
    keys_file.write_text(json.dumps(keys, indent=1), encoding="utf-8")
    with (_folder() / ".writes.log").open("a", encoding="utf-8") as log:
        log.write(f"{idempotency_key}\t{name}\n")
    return f"wrote note {name!r} ({len(text)} characters)"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        server.settings.host, server.settings.port = "127.0.0.1", int(sys.argv[2])
        server.run("streamable-http")
    else:
        server.run("stdio")
