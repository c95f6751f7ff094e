"""Throwaway Redis and PostgreSQL servers a drill starts, kills hard and restarts.

They run on free ports with their files in a private temp dir; the machine's shared servers are
never touched. PostgreSQL refuses to run as root, so the cluster belongs to the `postgres` OS user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import redis

__all__ = ["ThrowawayPostgres", "ThrowawayRedis", "free_port", "postgres_bin"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(check, what: str, timeout: float = 20.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            if check():
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not come up within {timeout:g} s")
        time.sleep(0.05)


class ThrowawayRedis:
    """`redis-server` without persistence on a free port: `start()`, `kill()` (SIGKILL), `start()` again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def up(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server is not installed")
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
        try:
            _wait(client.ping, f"redis-server on port {self.port}")
        finally:
            client.close()

    def kill(self) -> None:
        """kill -9: no shutdown, every connection dropped, every key lost."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.kills += 1

    def stop(self) -> None:
        self.kill()
        self.proc = None


def postgres_bin() -> Path | None:
    """The newest PostgreSQL bin folder with initdb and pg_ctl, if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


class ThrowawayPostgres:
    """A PostgreSQL cluster of its own (initdb in a temp dir, a free port), run as the postgres user."""

    def __init__(self) -> None:
        bindir = postgres_bin()
        if bindir is None:
            raise FileNotFoundError("initdb not found under /usr/lib/postgresql/*/bin")
        if shutil.which("runuser") is None and os.geteuid() == 0:
            raise FileNotFoundError("runuser is needed to run PostgreSQL as the postgres user")
        self.bindir = bindir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="keel-drill-pg-"))
        self.data = self.root / "data"
        self.stops = 0
        self.started = False
        self._restart: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/keel"

    def _as_postgres(self, *argv: str, timeout: float = 60) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        proc = subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{Path(argv[0]).name} failed: {(proc.stderr or proc.stdout).strip()[-500:]}")

    def init(self) -> None:
        """initdb (trust auth, no fsync: a drill needs crashes, not durable disks) and create `keel`."""
        if os.geteuid() == 0:
            shutil.chown(self.root, user="postgres", group="postgres")
        self._as_postgres(
            str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )
        self.start()
        with psycopg.connect(self.url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE keel")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.root / "log"), "-w", "-t", "30", "start",
        )  # fmt: skip
        self.started = True

    def stop_hard(self) -> None:
        """`pg_ctl stop -m immediate`: the server dies without a checkpoint, like a crash."""
        self._as_postgres(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        self.stops += 1
        self.started = False

    def crash(self, down_s: float) -> None:
        """Stop hard now and start again `down_s` seconds later, from a thread (load keeps running)."""
        self.stop_hard()
        timer = threading.Timer(down_s, self.start)
        timer.start()
        self._restart = timer

    def wait_restarted(self) -> None:
        """Block until a restart scheduled by `crash` is done; start the server if it is down."""
        if self._restart is not None:
            self._restart.join(60)
            self._restart = None
        if not self.started:
            self.start()

    def terminate_backends(self) -> int:
        """pg_terminate_backend on every other connection to this cluster's `keel` database."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = 'keel' AND pid <> pg_backend_pid()"
            ).fetchall()
        return len(rows)

    def destroy(self) -> None:
        """Stop it (if running) and delete its files."""
        with contextlib.suppress(Exception):
            if self.started:
                self.stop_hard()
        shutil.rmtree(self.root, ignore_errors=True)
