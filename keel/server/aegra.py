"""keel's HTTP app on Aegra (`aegra.json` → "http.app"): keel's routes, and the checks Aegra leaves to keel.

Aegra (aegra-api 0.6.0) differs from LangGraph Server where keel's security model depends on it
(docs/deployment.md, "Aegra"); this module closes each gap before the request reaches Aegra:

- Aegra calls `@auth.on.threads.create_run` only for `POST /threads/{id}/runs` (not `/runs/stream` or
  `/runs/wait`), with its own value shape, and reads no context from the handler. `KeelOnAegra` runs keel's
  handler (`keel.server.auth.create_run`) on every run-creating request instead, with the value shaped as
  LangGraph Server shapes it, and sends Aegra the body with keel's context: the same 403s (a context naming
  someone else, a raw resume by a non-approver) and the same run identity as on LangGraph Server.
- Aegra does not check that a run's thread belongs to the caller: here another user's thread is a 404.
- `config.configurable` is refused (422): Aegra would copy it over the context keel sets.
- Custom routes must be a FastAPI app, and Aegra's custom-route auth covers FastAPI routes only: keel's
  Starlette routes are authenticated here, with keel's own `authenticate`.
- The approvals inbox resumes through Aegra's run endpoint (`AegraServerApi`): there is no in-process
  LangGraph SDK transport on Aegra.

The run's user inside the graph is Aegra's authenticated user (`keel.app.aegra_graph`).
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import FastAPI
from langgraph_sdk import Auth
from sqlalchemy import select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keel.server import auth as keel_auth
from keel.server import routes as keel_routes
from keel.server.inbox import use_server

__all__ = ["app", "KeelOnAegra", "AegraServerApi"]

_RUN_PATH = re.compile(r"/threads/(?P<thread_id>[^/]+)/runs(?:/stream|/wait)?")
_MAX_BODY = 4 * 1024 * 1024


class _User:
    """keel's authenticated user as Starlette and keel's routes read it (identity, role, tenant)."""

    is_authenticated = True

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data
        self.identity = data["identity"]
        self.display_name = data.get("display_name", self.identity)
        self.role = data.get("role")
        self.tenant = data.get("tenant")
        self.permissions = data.get("permissions", [])

    def __getitem__(self, name: str) -> Any:
        return self._data[name]


async def _authenticated(scope: Scope) -> _User | None:
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
    try:
        return _User(dict(await keel_auth.authenticate(headers)))
    except Auth.exceptions.HTTPException:
        return None


def _json(status: int, detail: str) -> tuple[int, bytes]:
    return status, json.dumps({"detail": detail}).encode()


class KeelOnAegra:
    """ASGI middleware: keel's identity on /keel/*, keel's run checks on every run-creating request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith("/keel/"):
            scope["user"] = await _authenticated(scope)  # None: keel's route answers 401
        elif scope["method"] == "POST" and (m := _RUN_PATH.fullmatch(path)):
            user = await _authenticated(scope)
            if user is not None:  # no user: Aegra's own auth answers 401
                body = await _read(receive)
                refused, body = await _checked_run(user, m["thread_id"], body)
                if refused is not None:
                    await _answer(send, *refused)
                    return
                scope = {**scope, "headers": _with_length(scope["headers"], len(body))}
                receive = _replay(body, receive)
        await self.app(scope, receive, send)


async def _checked_run(user: _User, thread_id: str, body: bytes) -> tuple[tuple[int, bytes] | None, bytes]:
    """(refusal, None) or (None, the body Aegra gets: keel's context in it)."""
    try:
        payload = json.loads(body or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None, body  # Aegra's own 422
    if not isinstance(payload, dict):
        return None, body
    owner = await _thread_owner(thread_id)
    if owner is not None and owner != user.identity:  # admins included, as on LangGraph Server
        return _json(404, f"Thread '{thread_id}' not found"), body
    config = payload.get("config") or {}
    if isinstance(config, dict) and config.get("configurable"):
        return _json(
            422, "config.configurable is not accepted: keel sets the run's context from the key"
        ), body
    value: dict[str, Any] = {
        "thread_id": thread_id,
        "assistant_id": payload.get("assistant_id"),
        "metadata": dict(payload.get("metadata") or {}),
        "kwargs": {
            "input": payload.get("input") or None,
            "command": payload.get("command"),
            "context": payload.get("context"),
            "config": config,
        },
    }
    ctx = Auth.types.AuthContext(
        user=user,  # type: ignore[arg-type]
        permissions=list(user.permissions),
        resource="threads",
        action="create_run",
    )
    try:
        await keel_auth.create_run(ctx, value)  # type: ignore[arg-type]
    except Auth.exceptions.HTTPException as exc:
        return _json(exc.status_code, str(exc.detail)), body
    payload["context"] = value["kwargs"]["context"]
    return None, json.dumps(payload).encode()


async def _thread_owner(thread_id: str) -> str | None:
    from aegra_api.core.orm import Thread, _get_session_maker

    async with _get_session_maker()() as session:
        return await session.scalar(select(Thread.user_id).where(Thread.thread_id == thread_id))


async def _read(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > _MAX_BODY or not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # a disconnect, for streaming responses

    return replay


def _with_length(headers: list[tuple[bytes, bytes]], length: int) -> list[tuple[bytes, bytes]]:
    kept = [(k, v) for k, v in headers if k.lower() != b"content-length"]
    return [*kept, (b"content-length", str(length).encode())]


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class AegraServerApi:
    """The inbox's server calls on Aegra: its tables, its graph's state, and its run endpoint in-process."""

    async def waiting_on(self, thread_id: str) -> set[str] | None:
        from aegra_api.core.orm import Thread, _get_session_maker
        from aegra_api.services.langgraph_service import get_langgraph_service

        async with _get_session_maker()() as session:
            thread = await session.scalar(select(Thread).where(Thread.thread_id == thread_id))
        if thread is None:
            return None
        graph_id = (thread.metadata_json or {}).get("graph_id") or "keel"
        async with get_langgraph_service().get_graph(graph_id) as graph:
            snapshot = await graph.aget_state({"configurable": {"thread_id": thread_id}})
        return {i.value.get("approval_id") for i in snapshot.interrupts if isinstance(i.value, dict)}

    async def busy(self, thread_id: str) -> bool:
        from aegra_api.core.orm import Run, _get_session_maker

        async with _get_session_maker()() as session:
            found = await session.scalar(
                select(Run.run_id)
                .where(Run.thread_id == thread_id, Run.status.in_(("pending", "running")))
                .limit(1)
            )
        return found is not None

    async def resume(self, thread_id: str, resume: dict[str, Any], context: dict[str, Any]) -> str:
        """Aegra's `POST /threads/{id}/runs`, called in-process as the thread's owner (the requester)."""
        from aegra_api.api.runs import create_run
        from aegra_api.core.orm import Thread, _get_session_maker
        from aegra_api.models import RunCreate, User

        user = User(
            identity=context["user_id"],
            permissions=[f"role:{context['role']}"],
            role=context["role"],  # type: ignore[call-arg]
            tenant=context["tenant"],  # type: ignore[call-arg]
        )
        async with _get_session_maker()() as session:
            thread = await session.scalar(select(Thread).where(Thread.thread_id == thread_id))
            assistant = ((thread.metadata_json if thread else None) or {}).get("assistant_id") or "keel"
            request = RunCreate(
                assistant_id=assistant,
                command={"resume": resume},
                context=context,
                multitask_strategy="enqueue",
            )
            run = await create_run(thread_id, request, user=user, session=session)
        return str(run.run_id)


use_server(AegraServerApi())

app = FastAPI(lifespan=keel_routes.lifespan)
app.router.routes.extend(keel_routes.app.routes)
app.add_middleware(KeelOnAegra)
