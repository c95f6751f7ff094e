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

__all__ = ["ROOT", "free_port", "langgraph_dev", "aegra_serve", "scratch_databases"]

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(
    proc: subprocess.Popen, url: str, log_path: Path, ready_s: float, what: str, *, interval: float
) -> None:
    """Poll `url` until it answers 200; fail the test (with the log's tail) if `proc` exits or `ready_s`
    passes first."""
    deadline = time.monotonic() + ready_s
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited early:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not ready in {ready_s:.0f} s:\n{log_path.read_text()[-3000:]}")
        time.sleep(interval)


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
        _wait_ready(proc, f"{url}/ok", log_path, ready_s, "langgraph dev", interval=0.1)
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


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@contextmanager
def scratch_databases(*names: str, admin_url: str | None = None) -> Iterator[list[str]]:
    """Create one PostgreSQL database per name (suffixed with a uuid8), yield their URLs, drop them after."""
    import uuid

    import psycopg

    admin_url = admin_url or os.environ.get("KEEL_TEST_PG_ADMIN", "postgresql://127.0.0.1:5432/postgres")
    suffix = uuid.uuid4().hex[:8]
    dbs = [f"{name}_{suffix}" for name in names]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for db in dbs:
            conn.execute(f'CREATE DATABASE "{db}"')
    base = admin_url.rsplit("/", 1)[0]
    try:
        yield [f"{base}/{db}" for db in dbs]
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            for db in dbs:
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


@contextmanager
def aegra_serve(
    home: Path, env: dict[str, str], replicas: int = 2, ready_s: float = 60
) -> Iterator[list[str]]:
    """`make serve-now` (keel on Aegra) `replicas` times over the databases in `env`, one after the other
    (each migrates at start), on free ports; yields their base URLs and stops each process group on exit."""
    env = {
        **os.environ,
        **env,
        "KEEL_HOME": str(home),
        "LANGSMITH_TRACING": "false",
        "BIN": str(Path(sys.executable).parent),
    }
    for name in ("LANGGRAPH_API_KEY", "LANGSMITH_API_KEY", "LANGCHAIN_API_KEY", "AEGRA_CONFIG"):
        env.pop(name, None)
    procs: list[subprocess.Popen] = []
    urls: list[str] = []
    try:
        for i in range(replicas):
            port = free_port()
            log_path = home / f"aegra-{i}.log"
            with log_path.open("w") as log:
                cmd = ["make", "--no-print-directory", "-s", "serve-now", f"BIN={env['BIN']}"]
                run_env = {**env, "PORT": str(port), "HOST": "127.0.0.1"}
                procs.append(
                    subprocess.Popen(
                        cmd,
                        cwd=ROOT,
                        env=run_env,
                        start_new_session=True,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
            url = f"http://127.0.0.1:{port}"
            _wait_ready(procs[-1], f"{url}/health", log_path, ready_s, "make serve", interval=0.2)
            urls.append(url)
        yield urls
    finally:
        for proc in procs:  # all stop at once: each one's graceful shutdown takes a moment
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            _stop(proc)
