"""`keel workspace`, `keel metrics` and the log level: what an operator reaches for next to a run."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel.app.backends import Backends
from keel.app.demo import DEMO_FILES, seed_demo_files
from keel.app.server_backends import server_settings
from keel.cli import app
from keel.cli.metrics import collect_figures
from keel.settings import Settings


@pytest.fixture
def cli(tmp_path: Path):
    runner = CliRunner()
    env = {"KEEL_HOME": str(tmp_path / "home"), "KEEL_MEMORY_ENABLED": "false"}

    def invoke(*args: str, stdin: str | None = None, **extra: str):
        return runner.invoke(app, list(args), env={**env, **extra}, input=stdin, prog_name="keel")

    return invoke


def test_workspace_seed_ls_get_put(cli, tmp_path: Path) -> None:
    root = tmp_path / "home" / "workspace"
    seeded = json.loads(cli("workspace", "seed", "--json").stdout)
    assert seeded["files"] == list(DEMO_FILES) and (root / "shared" / "handbook.md").is_file()
    listed = json.loads(cli("workspace", "ls", "-r", "--json").stdout)["entries"]
    assert {e["path"] for e in listed if e["kind"] == "file"} == set(DEMO_FILES)
    assert cli("workspace", "get", "shared/handbook.md").stdout == DEMO_FILES["shared/handbook.md"]
    put = json.loads(
        cli("workspace", "put", "~/notes/a.md", "--user", "alice", "--json", stdin="hi\n").stdout
    )
    assert put == {"path": "home/alice/notes/a.md", "resource": "own:notes/a.md", "bytes": 3}
    assert (root / "home" / "alice" / "notes" / "a.md").read_text() == "hi\n"
    plain = cli("workspace", "ls", "home/alice")
    assert plain.stdout.splitlines()[0] == "path\tkind\tbytes\tmodified (UTC)"
    assert "home/alice/notes\tdir\t-\t" in plain.stdout


def test_workspace_paths_never_leave_the_root(cli, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    (tmp_path / "home" / "workspace" / "shared").mkdir(parents=True)
    (tmp_path / "home" / "workspace" / "shared" / "link").symlink_to(outside)
    for args, words in (
        (("get", "../outside.txt"), "leaves the workspace"),
        (("get", str(outside)), "is absolute"),
        (("get", "shared/link"), "resolves outside the workspace"),
        (("put", "shared/../../x.txt"), "leaves the workspace"),
        (("put", "shared/link"), "resolves outside the workspace"),
        (("ls", "~/"), "give --user"),
        (("get", "~/x", "--user", "../bob"), "user_id"),
    ):
        result = cli("workspace", *args, stdin="overwritten")
        assert result.exit_code == 1, (args, result.output)
        (line,) = result.stderr.strip().splitlines()
        assert words in line, (args, line)
    assert outside.read_text() == "secret"


async def test_metrics_report_the_records_and_the_breakers(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, memory_enabled=False)
    seed_demo_files(settings.workspace_root)  # the run's list_files call finds its folder and succeeds
    b = Backends.from_settings(settings)
    try:
        await b.ready()
        from keel.app.service import Keel

        async with Keel.open(settings) as keel:
            await keel.run("list shared", user_id="alice")
        guards = b.guards
        assert guards is not None
        for _ in range(guards.breaker.failure_threshold):
            await guards.breakers.record("tool:send_email", guards.breaker, ok=False, probe=False)
        figures = await collect_figures(b, timedelta(hours=1))
    finally:
        await b.aclose()
    assert figures["total_executions"] == 1 and figures["finished_executions"] == 1
    assert figures["total_tokens"] == figures["input_tokens"] + figures["output_tokens"] > 0
    assert figures["tool_calls"] == 1 and figures["pending_approvals"] == 0
    assert figures["breakers"] == {"tool:send_email": "open"} and figures["breakers_error"] is None


def test_keel_metrics_prints_figures_not_metadata(cli) -> None:
    assert cli("run", "list shared", "--user", "alice").exit_code in (0, 6)
    text = cli("metrics", "--window", "1h")
    assert text.exit_code == 0, text.output
    labels = [line.split("  ")[0] for line in text.stdout.splitlines()]
    for label in ("runs", "success rate", "p95 duration", "tokens", "cost", "tool failure rate", "breakers"):
        assert label in labels
    assert json.loads(cli("metrics", "--json").stdout)["total_executions"] == 1


class _KeyedMetrics(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        ok = self.headers.get("x-api-key") == "ops-key" and self.path == "/keel/metrics"
        body = b'keel_runs_total{status="succeeded"} 3.0\n' if ok else b'{"detail": "Unauthorized"}'
        self.send_response(200 if ok else 401)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def metrics_server() -> Iterator[str]:
    httpd = HTTPServer(("127.0.0.1", 0), _KeyedMetrics)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_metrics_url_sends_the_api_key(cli, metrics_server: str) -> None:
    missing = cli("metrics", "--url", metrics_server)
    assert missing.exit_code == 1 and "--api-key" in missing.stderr
    refused = cli("metrics", "--url", metrics_server, "--api-key", "wrong")
    assert refused.exit_code == 1 and "refused the API key (HTTP 401)" in refused.stderr
    text = cli("metrics", "--url", metrics_server, "--api-key", "ops-key")
    assert text.exit_code == 0 and 'keel_runs_total{status="succeeded"} 3.0' in text.stdout
    samples = json.loads(cli("metrics", "--url", metrics_server, "--json", KEEL_API_KEY="ops-key").stdout)
    assert samples["samples"] == [
        {"name": "keel_runs_total", "labels": {"status": "succeeded"}, "value": 3.0}
    ]


def test_logs_are_quiet_by_default_and_louder_when_asked(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEEL_LOG_LEVEL", raising=False)
    assert Settings().log_level == "warning"
    quiet = cli("run", "list shared", "--user", "alice", "--json")
    assert quiet.stderr == ""
    loud = cli("-v", "run", "list shared", "--user", "alice", "--json")
    assert '"level": "info"' in loud.stderr and json.loads(loud.stdout)["status"]
    debug = cli("run", "list shared", "--user", "alice", "--json", KEEL_LOG_LEVEL="info")
    assert '"level": "info"' in debug.stderr
    error_only = cli("-v", "run", "list shared", "--user", "alice", "--json", KEEL_LOG_LEVEL="error")
    assert '"level": "info"' in error_only.stderr  # -v raises a quieter KEEL_LOG_LEVEL
    assert "KEEL_LOG_LEVEL" not in __import__("os").environ  # -v does not leak past the command


def test_the_server_logs_at_info_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEEL_LOG_LEVEL", raising=False)
    assert server_settings().log_level == "info"
    monkeypatch.setenv("KEEL_LOG_LEVEL", "warning")
    assert server_settings().log_level == "warning"
