"""A warmed Python for worker processes that tests start one after another (and kill).

A worker that imports keel, LangGraph and LangChain spends about a second on imports before it does
anything, and the drills start a dozen of them in turn. `run` asks one server process, which imported
those once, to fork a child per worker instead: a process of its own (its own pid, argv, environment,
working directory and stdio) that runs the script or `-c` code as `python ...` would, and dies as any
process does: `os._exit(137)` is exit code 137, SIGKILL is -9, exactly what `subprocess.run` reports.
Nothing is shared with the child but modules imported before any connection, thread or event loop
existed. The server starts on first use and stops when the test process exits.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

__all__ = ["run"]

ROOT = Path(__file__).resolve().parent.parent

_WARM = [
    "keel.app.service",
    "keel.app.backends",
    "keel.settings",
    "keel.testing.fake_model",
    "keel.testing.openai_server",
    "keel.tools.registry",
    "keel.records",
    "keel.records.migrate",
    "alembic.command",
    "alembic.runtime.migration",
    "aiosqlite",
    "langchain_core.messages",
    "langgraph.checkpoint.sqlite.aio",
    "langgraph.checkpoint.postgres.aio",
    "psycopg",
    "psycopg_pool",
    "sqlalchemy.ext.asyncio",
]
"""What the workers import; anything else they import themselves, as they would anyway."""

_lock = threading.Lock()
_server: tuple[subprocess.Popen[bytes], str] | None = None


_BASE_PATH: list[str] = []
"""The server's sys.path without its script's folder and PYTHONPATH: the interpreter's own (stdlib, site)."""


def _paths(value: str | None) -> list[str]:
    return [os.path.abspath(p) for p in (value or "").split(os.pathsep) if p]


def _serve(path: str) -> None:  # pragma: no cover - runs in the server process
    import importlib

    own = _paths(os.environ.get("PYTHONPATH"))
    _BASE_PATH[:] = [p for p in sys.path[1:] if os.path.abspath(p) not in own]
    for name in _WARM:
        importlib.import_module(name)
    assert threading.active_count() == 1, "a warmed module started a thread: forking it is unsafe"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(8)
    listener.settimeout(1.0)
    parent = os.getppid()
    print("ready", flush=True)
    while os.getppid() == parent:  # the test process is gone (killed, not exited): so is this server
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        with conn, contextlib.suppress(OSError):  # a client that gave up (timeout) is not answered
            conn.settimeout(None)
            msg, fds, _, _ = socket.recv_fds(conn, 1 << 22, 3)
            request = json.loads(msg)
            pid = os.fork()
            if pid == 0:
                listener.close()
                conn.close()
                _child(request, fds)
            for fd in fds:
                os.close(fd)
            conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
            _, status = os.waitpid(pid, 0)
            conn.sendall(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}).encode() + b"\n")


def _child(request: dict[str, Any], fds: list[int]) -> None:  # pragma: no cover - the forked worker
    import random
    import runpy
    import traceback

    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    random.seed()  # not the server's sequence
    argv: list[str] = request["argv"]
    extra = _paths(os.environ.get("PYTHONPATH"))  # sys.path as `python ...` would build it, from its env
    code = 0
    try:
        if argv[0] == "-c":
            sys.argv = ["-c", *argv[2:]]
            sys.path[:] = ["", *extra, *_BASE_PATH]
            exec(compile(argv[1], "<string>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
        elif argv[0] == "-m":
            sys.argv = [argv[1], *argv[2:]]
            sys.path[:] = [os.getcwd(), *extra, *_BASE_PATH]
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv = list(argv)
            sys.path[:] = [os.path.dirname(os.path.abspath(argv[0])), *extra, *_BASE_PATH]
            runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:  # noqa: BLE001 - reported as python would, exit 1
        traceback.print_exc()
        code = 1
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _start() -> str:
    global _server
    with _lock:
        if _server is not None and _server[0].poll() is None:
            return _server[1]
        path = os.path.join(tempfile.mkdtemp(prefix="keel-warm-"), "sock")
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        proc = subprocess.Popen(
            [sys.executable, __file__, path],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"the warm python did not start (exit {proc.wait()})")
        _server = (proc, path)
        atexit.register(_stop, proc)
        return path


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _drain(fd: int, into: list[bytes]) -> threading.Thread:
    def read() -> None:
        with os.fdopen(fd, "rb") as f:
            into.append(f.read())

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def run(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """`subprocess.run(argv, capture_output=True, text=True, env=..., cwd=..., timeout=...)` for
    `argv = [sys.executable, script | -c code | -m module, *args]`, in a forked child."""
    assert argv[0] == sys.executable, argv[0]
    path = _start()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    null = os.open(os.devnull, os.O_RDONLY)
    out: list[bytes] = []
    err: list[bytes] = []
    readers = [_drain(out_r, out), _drain(err_r, err)]
    request = {"argv": [str(a) for a in argv[1:]], "env": dict(os.environ if env is None else env)}
    request["cwd"] = str(cwd or os.getcwd())
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(path)
        socket.send_fds(sock, [json.dumps(request).encode()], [null, out_w, err_w])
        for fd in (null, out_w, err_w):
            os.close(fd)
        sock.settimeout(timeout)
        replies = sock.makefile("rb")
        pid = json.loads(replies.readline())["pid"]
        try:
            line = replies.readline()
        except TimeoutError:
            os.kill(pid, signal.SIGKILL)
            raise subprocess.TimeoutExpired(argv, timeout) from None
        returncode = json.loads(line)["returncode"]
    for reader in readers:
        reader.join(30)
    stdout, stderr = (b"".join(x).decode(errors="replace") for x in (out, err))
    return subprocess.CompletedProcess(argv, returncode, stdout, stderr)


if __name__ == "__main__":
    _serve(sys.argv[1])
