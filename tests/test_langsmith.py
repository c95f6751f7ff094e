"""LangSmith: a local stand-in for its API receives redacted runs; an endpoint that hangs costs nothing."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import zstandard
from langchain_core.messages import AIMessage

from keel.app.service import Keel
from keel.observability.langsmith import root_run_id
from keel.settings import Settings
from keel.testing.openai_server import FakeOpenAIServer, Fault, Reply

CANARY_KEY = "sk-proj-Qm4Vb8Nc2Xz7Lk1Jh5Gf9Ds3Aw6Er0"
CANARY_PASSWORD = "Tr0ub4dor-canary-771"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path)


_PROJECT = {
    "id": "0b6c1a52-63f0-4d0a-9a1e-3c1d8f0e2b47",
    "name": "keel-test",
    "start_time": "2026-01-01T00:00:00Z",
    "tenant_id": "5d0b7a3e-8c2f-4e71-b0a6-9f4c3e2d1a58",
    "reference_dataset_id": None,
}


class _LangSmithStandIn:
    """Answers /info with defaults and records the body of every other request."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _body(self) -> None:
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "zstd":
                    data = zstandard.ZstdDecompressor().decompressobj().decompress(data)
                stand_in.bodies.append(data)
                self._reply(b'{"ok": true}')

            def _reply(self, payload: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:  # noqa: N802
                if self.path.startswith("/sessions?"):  # the project, looked up by name
                    self._reply(json.dumps([_PROJECT]).encode())
                else:
                    self._reply(b"{}")

            do_POST = do_PATCH = _body  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _LangSmithStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def received(self) -> bytes:
        return b"\n".join(self.bodies)


def _find_all(data: bytes, needle: bytes) -> list[int]:
    out, i = [], data.find(needle)
    while i >= 0:
        out.append(i)
        i = data.find(needle, i + 1)
    return out


def _turns() -> list[object]:
    return [
        AIMessage(
            content="", tool_calls=[{"name": "read_file", "args": {"path": "shared/handbook.md"}, "id": "r1"}]
        ),
        f"Your key is {CANARY_KEY} and password={CANARY_PASSWORD}",
    ]


async def test_runs_reach_langsmith_with_metadata_and_without_secrets(make_keel, monkeypatch):
    with _LangSmithStandIn() as api:
        monkeypatch.setenv("LANGSMITH_TRACING", "true")
        monkeypatch.setenv("LANGSMITH_ENDPOINT", api.url)
        monkeypatch.setenv("LANGSMITH_API_KEY", "lsv2_test_key")
        monkeypatch.setenv("LANGSMITH_PROJECT", "keel-test")
        async with make_keel(_turns()) as keel:
            assert keel.backends.telemetry.langsmith is not None
            out = await keel.run(
                f"read the handbook; my key is {CANARY_KEY} and password={CANARY_PASSWORD}", user_id="alice"
            )
        assert out.status == "succeeded"
        deadline = time.monotonic() + 5
        while out.execution_id.encode() not in api.received and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        sent = api.received
    assert out.execution_id.encode() in sent, "no run reached the stand-in"
    version = f"keel-version:{keel.backends.version.id}".encode()  # the run's agent version, as a tag
    for expected in (b"keel_rollout_arm", version, b"read_file", b"chat_model"):
        assert expected in sent or expected.replace(b"_", b"") in sent, expected
    leaks = [sent[max(0, i - 300) : i + 60] for i in _find_all(sent, CANARY_KEY.encode())]
    assert not leaks, leaks[:2]
    assert CANARY_PASSWORD.encode() not in sent


async def test_a_hanging_langsmith_endpoint_does_not_slow_the_run(make_keel, monkeypatch):
    black_hole = socket.socket()
    black_hole.bind(("127.0.0.1", 0))
    black_hole.listen(64)  # accepts connections, never answers
    try:
        monkeypatch.setenv("LANGSMITH_TRACING", "true")
        monkeypatch.setenv("LANGSMITH_ENDPOINT", f"http://127.0.0.1:{black_hole.getsockname()[1]}")
        monkeypatch.setenv("LANGSMITH_API_KEY", "lsv2_test_key")
        started = time.monotonic()
        async with make_keel(_turns()) as keel:
            out = await keel.run("read the handbook", user_id="alice")
            ran = time.monotonic() - started
        closed = time.monotonic() - started
    finally:
        black_hole.close()
    assert out.status == "succeeded"
    assert ran < 3.0, f"the run took {ran:.1f} s"
    assert closed < ran + 3.0, f"closing waited {closed - ran:.1f} s on the tracer"


async def test_a_model_error_reaches_langsmith_without_its_secret(tmp_path, monkeypatch):
    """Issue 11, item 11: a run's `error` (a provider's error body, a traceback) is redacted too."""
    message = f"provider said: invalid api key {CANARY_KEY} (see /srv/keel/models.yaml)"
    with _LangSmithStandIn() as api, FakeOpenAIServer(model="fake-model") as server:
        fault = Fault.http(500, message=message)
        server.enqueue(Reply(content="plan"), fault, fault)
        monkeypatch.setenv("LANGSMITH_TRACING", "true")
        monkeypatch.setenv("LANGSMITH_ENDPOINT", api.url)
        monkeypatch.setenv("LANGSMITH_API_KEY", "lsv2_test_key")
        monkeypatch.setenv("LANGSMITH_PROJECT", "keel-test")
        settings = Settings(
            home=tmp_path,
            model_provider="openai",
            openai_base_url=server.base_url,
            model="fake-model",
            openai_api_key="test-key",
        )
        async with Keel.open(settings) as keel:
            out = await keel.run("hi", user_id="alice")
        deadline = time.monotonic() + 5
        while b"provider said" not in api.received and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        sent = api.received
    assert out.terminated_reason == "llm_unavailable"
    assert b"provider said: invalid api key" in sent, "the error reached the stand-in"
    assert b"/srv/keel/models.yaml" in sent, "the path is evidence, not a secret"
    leaks = [sent[max(0, i - 300) : i + 60] for i in _find_all(sent, CANARY_KEY.encode())]
    assert not leaks, leaks[:2]


async def test_feedback_reaches_langsmith_on_the_root_run_of_the_execution(make_keel, monkeypatch):
    """Issue 15, item 3: the root run's id is `root_run_id(execution_id)`, the id feedback is sent on."""
    with _LangSmithStandIn() as api:
        monkeypatch.setenv("LANGSMITH_TRACING", "true")
        monkeypatch.setenv("LANGSMITH_ENDPOINT", api.url)
        monkeypatch.setenv("LANGSMITH_API_KEY", "lsv2_test_key")
        monkeypatch.setenv("LANGSMITH_PROJECT", "keel-test")
        async with make_keel(["hello"]) as keel:
            out = await keel.run("say hello", user_id="alice")
            run_id = str(root_run_id(out.execution_id)).encode()
            await keel.feedback(out.execution_id, 1, f"thanks {CANARY_KEY}", user_id="alice", role="user")
        deadline = time.monotonic() + 5
        while b"user_score" not in api.received and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    feedback = [json.loads(b) for b in api.bodies if b'"user_score"' in b]
    traced = b"\n".join(b for b in api.bodies if b'"user_score"' not in b)
    assert run_id in traced and out.execution_id.encode() in traced, "no root run with the execution's id"
    assert [(f["run_id"], f["trace_id"], f["key"], f["score"]) for f in feedback] == [
        (run_id.decode(), run_id.decode(), "user_score", 1)
    ]
    assert feedback[0]["session_id"] == _PROJECT["id"] and feedback[0]["comment"] == "thanks [REDACTED]"
