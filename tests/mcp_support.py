"""Helpers for the MCP tests: a notes project over a private copy of the example's server (so its
processes can be found by path), a streamable-HTTP server on a free port, the pins written."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "notes_mcp"

CONFIG = """\
agent: {{name: notes-test, plan: false}}
model: scripted:keel-scripted
tools:
  - mcp: {{name: notes, {connect}, tools: [list_notes, read_note]}}
    effect: read
    timeout_s: 10
  - mcp: {{name: notes, tools: [write_note]}}
    effect: external
    resource: "note:{{name}}"
    timeout_s: 10
{extra}policy: policy.yaml
"""


def stdio_connect(folder: Path) -> str:
    return f"command: python, args: [server.py], env: {{NOTES_DIR: {folder / 'notes'}}}"


def notes_project(folder: Path, *, connect: str | None = None, extra: str = "", pin: bool = True) -> Path:
    """keel.yaml, policy.yaml and server.py (the example's) in `folder`; notes in `folder/notes`."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLE / "server.py", folder / "server.py")
    shutil.copy(EXAMPLE / "policy.yaml", folder / "policy.yaml")
    (folder / "notes").mkdir(exist_ok=True)
    (folder / "notes" / "welcome.md").write_text("# Welcome\n", encoding="utf-8")
    path = folder / "keel.yaml"
    path.write_text(CONFIG.format(connect=connect or stdio_connect(folder), extra=extra), encoding="utf-8")
    if pin:
        from keel.cli.tools import pin_rows

        pin_rows(path)
    return path


def server_pids(folder: Path) -> list[int]:
    """Live processes running `folder`'s server.py (started in `folder`, or by its full path)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(proc / "cwd")
            state = next(
                (ln for ln in (proc / "status").read_text().splitlines() if ln.startswith("State:")), ""
            )
        except OSError:
            continue
        if "Z" in state.split()[1:2]:  # a zombie has exited; its parent just has not reaped it yet
            continue
        if str(folder / "server.py").encode() in args or (b"server.py" in args and cwd == str(folder)):
            pids.append(int(proc.name))
    return pids


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def http_server(folder: Path) -> Iterator[str]:
    """`folder`'s server.py over streamable HTTP on a free port; yields its URL; stopped after."""
    port = free_port()
    env = {**os.environ, "NOTES_DIR": str(folder / "notes")}
    proc = subprocess.Popen(
        [sys.executable, str(folder / "server.py"), "--http", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):  # up to 30 s on a busy machine: wait for the port, not for a duration
            if proc.poll() is not None:
                raise RuntimeError(f"the HTTP MCP server exited with {proc.returncode}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        else:
            raise RuntimeError("the HTTP MCP server did not listen")
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(10)
