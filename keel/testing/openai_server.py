"""A local OpenAI-compatible chat server with scripted replies and fault injection, for tests.

Drive the real ``openai`` / ``langchain_openai`` clients against it::

    with FakeOpenAIServer(model="fake-model") as server:
        server.enqueue(Reply(content="hello", usage=(12, 3)), Fault.http(429, retry_after=1.5))
        model = ChatOpenAI(base_url=server.base_url, api_key="test", model="fake-model", max_retries=0)
        assert model.invoke("hi").content == "hello"

Each ``POST /v1/chat/completions`` takes the next queued item (or ``default`` when the queue is
empty) and answers it, as JSON or, when the request asks for ``stream: true``, as SSE chunks.

For drills, ``respond`` answers from the request itself (a conversation-aware script) and ``chaos``
injects a seeded share of faults in front of it, without using up a scripted answer::

    chaos = Chaos(rate=0.3, seed=7)   # 500, 429 + Retry-After, hang, malformed JSON, truncated body
    with FakeOpenAIServer(respond=lambda body: Reply(content="hi"), chaos=chaos) as server: ...
    print(chaos.injected)             # Counter of the faults it sent, by name
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import re
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

__all__ = ["Chaos", "FakeOpenAIServer", "Fault", "Reply"]

ToolArgs = Mapping[str, Any] | str
ToolCallSpec = tuple[str, ToolArgs] | tuple[str, str, ToolArgs]

_MALFORMED_JSON = '{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{"index": 0, "mess'


@dataclass(frozen=True, kw_only=True, slots=True)
class Reply:
    """One scripted assistant answer."""

    content: str | None = None
    """Assistant text; may be None when the reply only calls tools."""
    tool_calls: Sequence[ToolCallSpec] = ()
    """``(name, args)`` or ``(id, name, args)``; args is a dict or an already encoded JSON string."""
    usage: tuple[int, int] | None = None
    """``(prompt_tokens, completion_tokens)``; estimated as about len(text) / 4 when None."""
    finish_reason: str | None = None
    """Overrides the finish reason ("tool_calls" when there are tool calls, else "stop")."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "tool_calls", tuple(tuple(call) for call in self.tool_calls))
        for call in self.tool_calls:
            if len(call) not in (2, 3):
                raise ValueError(f"tool call must be (name, args) or (id, name, args), got {call!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class Fault:
    """One scripted failure; build it with ``Fault.http``, ``slow``, ``malformed`` or ``truncated``.

    ``status``, ``message`` and ``retry_after`` (seconds, sent as ``Retry-After``) shape an ``http``
    fault; ``delay`` is how long a ``slow`` fault waits before answering with the next queued item.
    """

    kind: Literal["http", "slow", "malformed", "truncated"]
    status: int = 500
    message: str | None = None
    retry_after: float | None = None
    delay: float = 0.0

    @classmethod
    def http(
        cls, status: int = 500, *, message: str | None = None, retry_after: float | None = None
    ) -> Fault:
        """Answer with an OpenAI-shaped error body and this status."""
        return cls(kind="http", status=status, message=message, retry_after=retry_after)

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        """Wait, then answer with the next queued item (or ``default``); gives up if the client leaves."""
        return cls(kind="slow", delay=seconds)

    @classmethod
    def malformed(cls) -> Fault:
        """Answer 200 with a body that is not valid JSON (a broken SSE chunk when streaming)."""
        return cls(kind="malformed")

    @classmethod
    def truncated(cls) -> Fault:
        """Answer 200, send the first part of the body (or of the SSE stream), then drop the connection."""
        return cls(kind="truncated")

    @property
    def label(self) -> str:
        """A short name for counting: ``http_500``, ``http_429``, ``slow``, ``malformed``, ``truncated``."""
        return f"http_{self.status}" if self.kind == "http" else self.kind


class Chaos:
    """A seeded fault schedule: each request gets one of `faults` with probability `rate`.

    The same seed gives the same sequence of decisions, so a drill that fails can be replayed.
    """

    def __init__(self, rate: float, seed: int, faults: Sequence[Fault] | None = None) -> None:
        if not 0 <= rate <= 1:
            raise ValueError(f"rate must be within [0, 1], got {rate}")
        self.rate = rate
        self.seed = seed
        self.faults = (
            tuple(faults)
            if faults is not None
            else (
                Fault.http(500),
                Fault.http(429, retry_after=0.05),
                Fault.slow(30.0),
                Fault.malformed(),
                Fault.truncated(),
            )
        )
        self.injected: Counter[str] = Counter()
        """How many of each fault were sent, by ``Fault.label``."""
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def pick(self) -> Fault | None:
        """The fault for the next request, or None to answer it normally."""
        with self._lock:
            if self._rng.random() >= self.rate:
                return None
            fault = self._rng.choice(self.faults)
            self.injected[fault.label] += 1
            return fault


class _ThreadServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the main thread."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class FakeOpenAIServer:
    """An OpenAI-compatible HTTP server on 127.0.0.1 that answers from a script.

    Use it as a (sync or async) context manager, or call ``start()`` and ``stop()``.
    """

    def __init__(
        self,
        model: str = "fake-model",
        *,
        default: Reply | None = None,
        respond: Callable[[dict[str, Any]], Reply] | None = None,
        chaos: Chaos | None = None,
    ) -> None:
        self.model = model
        self.default = default
        """Answer used when the queue is empty; None answers HTTP 500 "no scripted reply"."""
        self.respond = respond
        """Answers a request from its JSON body when the queue is empty (before ``default``)."""
        self.chaos = chaos
        """Faults injected in front of the script (they do not use up a queued item)."""
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat_completions, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )
        self._lock = threading.Lock()
        self._queue: deque[Reply | Fault] = deque()
        self._requests: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._stopping = threading.Event()
        self._server: _ThreadServer | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self._sock: socket.socket | None = None

    def enqueue(self, *items: Reply | Fault) -> None:
        """Queue replies and faults, answered in order, one per chat completion request."""
        for item in items:
            if not isinstance(item, Reply | Fault):
                raise TypeError(f"expected Reply or Fault, got {type(item).__name__}")
        with self._lock:
            self._queue.extend(items)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """A copy of the JSON bodies received by the chat endpoint, in order."""
        with self._lock:
            return list(self._requests)

    @property
    def pending(self) -> int:
        """How many queued items have not been used yet."""
        with self._lock:
            return len(self._queue)

    def reset(self) -> None:
        """Clear the queue and the recorded requests, and restart generated ids at 1."""
        with self._lock:
            self._queue.clear()
            self._requests.clear()
            self._ids = itertools.count(1)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``, for the client's ``base_url``."""
        if self._port is None:
            raise RuntimeError("FakeOpenAIServer is not running")
        return f"http://127.0.0.1:{self._port}/v1"

    def start(self, timeout: float = 10.0) -> FakeOpenAIServer:
        """Serve on a free port from a background thread; return once the server answers."""
        if self._thread is not None:
            raise RuntimeError("FakeOpenAIServer is already running")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(
            self.app, log_config=None, log_level="warning", access_log=False, lifespan="off", loop="asyncio"
        )
        self._server = _ThreadServer(config)
        self._stopping.clear()
        self._port = sock.getsockname()[1]
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=f"fake-openai-{self._port}", daemon=True
        )
        self._sock = sock
        self._thread.start()
        try:
            self._wait_until_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving (slow faults in flight give up) and join the thread."""
        if self._thread is None or self._server is None:
            return
        self._stopping.set()
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout)
        if self._sock is not None:
            self._sock.close()
        self._thread = self._server = self._port = self._sock = None

    def _wait_until_ready(self, timeout: float) -> None:
        assert self._thread is not None and self._server is not None
        deadline = time.monotonic() + timeout
        with httpx.Client(trust_env=False, timeout=1.0) as client:
            while time.monotonic() < deadline:
                if not self._thread.is_alive():
                    raise RuntimeError("FakeOpenAIServer failed to start")
                if self._server.started:
                    with contextlib.suppress(httpx.HTTPError):
                        if client.get(f"{self.base_url}/models").status_code == 200:
                            return
                time.sleep(0.01)
        raise TimeoutError(f"FakeOpenAIServer did not answer within {timeout} s")

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> FakeOpenAIServer:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    async def _models(self, request: Request) -> Response:
        model = {"id": self.model, "object": "model", "created": 0, "owned_by": "keel"}
        return JSONResponse({"object": "list", "data": [model]})

    async def _chat_completions(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _error(400, "request body must be a JSON object")
        with self._lock:
            self._requests.append(body)
        injected = self.chaos.pick() if self.chaos is not None else None
        item = injected or self._next(body)
        while isinstance(item, Fault) and item.kind == "slow":
            if not await self._wait(request, item.delay):
                return _error(503, "request abandoned during a slow fault")
            item = self._next(body)
        stream = bool(body.get("stream"))
        if item is None:
            return _error(500, "no scripted reply", code="no_scripted_reply")
        if isinstance(item, Fault):
            if item.kind == "http":
                return _error(item.status, item.message, retry_after=item.retry_after)
            if item.kind == "truncated":
                completion = self._completion(Reply(content="this answer is cut off half way"), body)
                return _cut_off(completion, stream)
            if stream:
                return _sse([_MALFORMED_JSON])
            return Response(_MALFORMED_JSON, media_type="application/json")
        completion = self._completion(item, body)
        if not stream:
            return JSONResponse(completion)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return _sse(_chunks(completion, include_usage))

    def _next(self, body: dict[str, Any]) -> Reply | Fault | None:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        return self.respond(body) if self.respond is not None else self.default

    async def _wait(self, request: Request, seconds: float) -> bool:
        """Sleep; False as soon as the client disconnects or the server stops."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self._stopping.is_set() or await request.is_disconnected():
                return False
            await asyncio.sleep(min(0.05, left))
        return True

    def _completion(self, reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
        calls = []
        for spec in reply.tool_calls:
            call_id, name, args = spec if len(spec) == 3 else (None, *spec)
            with self._lock:
                call_id = call_id or f"call_{next(self._ids)}"
            arguments = args if isinstance(args, str) else json.dumps(args)
            calls.append(
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
            )
        content = reply.content if reply.content is not None or calls else ""
        message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
        if calls:
            message["tool_calls"] = calls
        prompt, output = reply.usage or (
            _estimate_tokens(json.dumps(body.get("messages", [])) + json.dumps(body.get("tools", []))),
            _estimate_tokens((content or "") + "".join(c["function"]["arguments"] for c in calls)),
        )
        finish = reply.finish_reason or ("tool_calls" if calls else "stop")
        return {
            "id": f"chatcmpl-{time.time_ns()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output},
            "system_fingerprint": None,
        }


def _chunks(completion: dict[str, Any], include_usage: bool) -> Iterator[dict[str, Any]]:
    """Split a chat.completion into chat.completion.chunk events the way OpenAI streams them."""
    head = {key: completion[key] for key in ("id", "created", "model", "system_fingerprint")}
    head["object"] = "chat.completion.chunk"
    choice = completion["choices"][0]

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        event = {**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        return {**event, "usage": None} if include_usage else event

    yield chunk({"role": "assistant", "content": ""})
    for piece in re.findall(r"\s*\S+\s*", choice["message"]["content"] or ""):
        yield chunk({"content": piece})
    for index, call in enumerate(choice["message"].get("tool_calls", [])):
        opening = {"name": call["function"]["name"], "arguments": ""}
        yield chunk(
            {"tool_calls": [{"index": index, "id": call["id"], "type": "function", "function": opening}]}
        )
        arguments = call["function"]["arguments"]
        for piece in (arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, choice["finish_reason"])
    if include_usage:
        yield {**head, "choices": [], "usage": completion["usage"]}


def _sse(events: Iterable[dict[str, Any] | str]) -> StreamingResponse:
    """Stream events as ``data:`` lines (strings are sent raw), then ``data: [DONE]``."""
    lines = [f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n" for e in events] + ["data: [DONE]\n\n"]
    return StreamingResponse(iter(lines), media_type="text/event-stream")


class _Dropped(Exception):
    """Raised inside a response body to make the server drop the connection half way."""


def _cut_off(completion: dict[str, Any], stream: bool) -> StreamingResponse:
    """A 200 response whose body stops half way: the connection is dropped, no ``[DONE]``."""
    if stream:
        events = list(_chunks(completion, include_usage=False))
        parts = [f"data: {json.dumps(e)}\n\n" for e in events[: max(1, len(events) // 2)]]
        media = "text/event-stream"
    else:
        text = json.dumps(completion)
        parts = [text[: len(text) // 2]]
        media = "application/json"

    async def body() -> AsyncIterator[str]:
        for part in parts:
            yield part
        raise _Dropped("connection dropped by a truncated fault")

    return StreamingResponse(body(), media_type=media)


def _error(
    status: int, message: str | None, *, code: str | None = None, retry_after: float | None = None
) -> Response:
    """An OpenAI-shaped error response."""
    kind = "server_error" if status >= 500 else "requests" if status == 429 else "invalid_request_error"
    code = code or ("rate_limit_exceeded" if status == 429 else None)
    error = {"message": message or f"scripted HTTP {status}", "type": kind, "param": None, "code": code}
    headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def _estimate_tokens(text: str) -> int:
    """About one token per four characters, at least one."""
    return max(1, (len(text) + 3) // 4)
