"""A real `langgraph dev` for keel on a free port, shared by the server test modules.

KEEL_HOME lives outside the project so nothing the server writes makes it reload; the dev API keys come
from keel/server/dev_keys.yaml. The server is always stopped (its whole process group) on exit.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

__all__ = ["ROOT", "free_port", "langgraph_dev"]

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def langgraph_dev(home: Path, ready_s: float = 90, env: dict[str, str] | None = None) -> Iterator[str]:
    """Start `langgraph dev` with KEEL_HOME=home (and `env`), wait for /ok, yield its base URL, stop it."""
    port = free_port()
    env = {
        **os.environ,
        **(env or {}),
        "KEEL_HOME": str(home),
        "KEEL_PROFILE": "embedded",
        "KEEL_API_KEYS_FILE": str(ROOT / "keel" / "server" / "dev_keys.yaml"),
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGGRAPH_NO_VERSION_CHECK": "true",
        "LANGSMITH_TRACING": "false",
    }
    for name in ("LANGGRAPH_API_KEY", "LANGSMITH_API_KEY", "LANGCHAIN_API_KEY"):
        env.pop(name, None)
    log_path = home / "server.log"
    log = log_path.open("w")
    cmd = [str(Path(sys.executable).parent / "langgraph"), "dev", "--no-browser", "--no-reload"]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    out = {"stdout": log, "stderr": subprocess.STDOUT}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True, **out)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_s
        while True:
            if proc.poll() is not None:
                pytest.fail(f"langgraph dev exited early:\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/ok", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"langgraph dev not ready in {ready_s:.0f} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        log.close()
