"""keel's custom auth for LangGraph Server (`langgraph.json` → "auth"): API keys → user, role, tenant.

A request carries its key as `x-api-key: KEY` or `Authorization: Bearer KEY`. An unknown or missing key
is a 401 with no detail. Threads, runs, crons, assistants and the store are filtered by owner; admins
read everything but start runs only on their own threads (an approver resumes someone else's thread
through `POST /keel/approvals/{id}`). A run's context is set here from the authenticated user.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from typing import Any

from langgraph_sdk import Auth

from keel.app.server_backends import server_backends
from keel.approvals import refuse
from keel.identity import Principal, principal_of
from keel.policies import ADMIN_ROLE
from keel.server.keys import ApiKeys, ApiKeysError

__all__ = ["auth", "load_keys", "DEV_KEYS_FILE"]

DEV_KEYS_FILE = Path(__file__).resolve().parent / "dev_keys.yaml"
_UNAUTHORIZED = "Unauthorized"
_log = logging.getLogger(__name__)
_cache: dict[tuple[str, float], ApiKeys] = {}

auth = Auth()


def _keys_path() -> Path:
    b = server_backends()
    path = b.settings.api_keys_file
    if path is None:
        raise ApiKeysError("KEEL_API_KEYS_FILE", 0, "not set, so no API key can be accepted")
    path = path.resolve()
    if path == DEV_KEYS_FILE and b.settings.profile == "postgres":
        raise ApiKeysError(str(path), 1, "the development keys may not be used with the postgres profile")
    return path


def _load_sync() -> ApiKeys:
    path = _keys_path()
    stamp = (str(path), path.stat().st_mtime if path.exists() else -1.0)
    if stamp not in _cache:
        keys = ApiKeys.load(path, roles=server_backends().policy.current().roles)
        _cache.clear()
        _cache[stamp] = keys
    return _cache[stamp]


async def load_keys() -> ApiKeys:
    """The API keys of `KEEL_API_KEYS_FILE`, (re-)read off the event loop when the file changed."""
    return await asyncio.to_thread(_load_sync)


def _presented_key(headers: dict[Any, Any]) -> str | None:
    def get(name: str) -> str | None:
        raw = headers.get(name.encode()) or headers.get(name)
        return raw.decode("latin-1") if isinstance(raw, bytes) else raw

    if key := get("x-api-key"):
        return key.strip()
    scheme, _, token = (get("authorization") or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@auth.authenticate
async def authenticate(headers: dict) -> Auth.types.MinimalUserDict:
    """Resolve the API key; anything else is a bare 401."""
    try:
        principal = (await load_keys()).lookup(_presented_key(headers))
    except (ApiKeysError, OSError) as exc:
        _log.error("keel auth: %s", exc)  # the operator's problem; the client learns nothing
        principal = None
    if principal is None:
        raise Auth.exceptions.HTTPException(status_code=401, detail=_UNAUTHORIZED)
    return {  # type: ignore[typeddict-unknown-key]
        "identity": principal.user_id,
        "display_name": principal.user_id,
        "is_authenticated": True,
        "permissions": [f"role:{principal.role}"],
        "role": principal.role,
        "tenant": principal.tenant,
    }


def _who(ctx: Auth.types.AuthContext) -> Principal:
    return principal_of(ctx.user)


def _stamp(value: Any, who: Principal) -> None:
    """Mark a created object with its owner."""
    if isinstance(value, dict):
        metadata = value.setdefault("metadata", {})
        if isinstance(metadata, dict):
            metadata.update(owner=who.user_id, tenant=who.tenant)


@auth.on
async def owner_only(ctx: Auth.types.AuthContext, value: Any) -> Auth.types.FilterType | None:
    """Default for threads, crons and anything not handled below: your own objects; admins see all.

    A created object is stamped with its owner; an update cannot change the owner or tenant.
    """
    who = _who(ctx)
    if ctx.action == "create":
        _stamp(value, who)
    elif ctx.action == "update" and isinstance(value, dict) and isinstance(value.get("metadata"), dict):
        value["metadata"].pop("owner", None)
        value["metadata"].pop("tenant", None)
    return None if who.role == ADMIN_ROLE else {"owner": who.user_id}


@auth.on.threads.create_run
async def create_run(ctx: Auth.types.AuthContext, value: Auth.types.RunsCreate) -> Auth.types.FilterType:
    """A run acts as the authenticated user: its context is set here, a disagreeing one is refused."""
    who = _who(ctx)
    _stamp(value, who)
    kwargs = value.get("kwargs") or {}
    await _refuse_resume_by_non_approver(who, value)
    supplied = kwargs.get("context") or {}
    if not isinstance(supplied, dict):
        raise Auth.exceptions.HTTPException(status_code=422, detail="context must be a JSON object")
    for name, want in (("user_id", who.user_id), ("role", who.role), ("tenant", who.tenant)):
        if name in supplied and supplied[name] != want:
            raise Auth.exceptions.HTTPException(
                status_code=403,
                detail=f"context.{name} disagrees with the API key's identity; omit it (set from the key)",
            )
    execution_id, version = await _execution(value, supplied, who)
    kwargs["context"] = {
        "user_id": who.user_id,
        "role": who.role,
        "tenant": who.tenant,
        "execution_id": execution_id,
        "version": version,  # the server's (the user's rollout arm's), never the client's
    }
    value["kwargs"] = kwargs
    return {"owner": who.user_id}  # admins included: another user's thread resumes via the approvals route


async def _refuse_resume_by_non_approver(who: Principal, value: Auth.types.RunsCreate) -> None:
    """A raw `Command(resume=...)` decides an approval: only approvers may send one.

    Refused here, before the run exists, so the client gets a 403 and the thread stays paused; inside
    the graph the same refusal would be a failed run and a thread in `error`. The attempt is audited.
    """
    command = (value.get("kwargs") or {}).get("command")
    if not isinstance(command, dict) or command.get("resume") is None:
        return
    b = server_backends()
    if b.policy.current().is_approver(who.role):
        return
    why = (
        f"{who.user_id!r} (role {who.role!r}) may not decide approvals; "
        "an approver decides through POST /keel/approvals/{id}"
    )
    answer = command.get("resume")
    decision = answer.get("decision") if isinstance(answer, dict) else None
    try:
        await b.ready()
        thread_id = str(value.get("thread_id") or "")
        for row in await b.records.list_approvals(status="pending", requester=who.user_id):
            if row.thread_id == thread_id:
                await refuse(b.records, row, approver=who.user_id, decision=decision, why=why)
    except Exception as exc:  # noqa: BLE001 - the refusal stands even when it cannot be written down
        _log.error(
            "keel auth: could not audit a refused resume on thread %s: %s", value.get("thread_id"), exc
        )
    raise Auth.exceptions.HTTPException(status_code=403, detail=why)


async def _execution(
    value: Auth.types.RunsCreate, supplied: dict[str, Any], who: Principal
) -> tuple[str, str]:
    """The run's execution id and agent version. A resumed run (a command, or no input) continues the
    thread's execution as the version it started as; new input starts one, whose id is the server's run id
    (the root run LangSmith traces: feedback on the execution is sent on it, see
    `keel.observability.langsmith.root_run_id`) unless the client gave one, as the version of the user's
    rollout arm (without a rollout: the server's)."""
    b = server_backends()
    kwargs = value.get("kwargs") or {}
    given = supplied.get("execution_id")
    resuming = kwargs.get("command") is not None or kwargs.get("input") is None
    if resuming and value.get("thread_id") is not None:
        await b.ready()
        prior = await b.records.latest_execution(str(value["thread_id"]))
        if prior is not None:
            return prior.execution_id, prior.version
    version = b.version.id
    if b.rollout is not None:
        await b.ready()
        version = b.arms[await b.rollout.choose(who.user_id)].version.id
    if isinstance(given, str) and given:
        return given, version
    return str(value.get("run_id") or uuid.uuid4()), version


@auth.on.assistants.read
@auth.on.assistants.search
async def read_assistants(ctx: Auth.types.AuthContext, value: Any) -> Auth.types.FilterType | None:
    """Everyone sees the graph's system assistant; user-made assistants only by their owner."""
    who = _who(ctx)
    if who.role == ADMIN_ROLE:
        return None
    return {"$or": [{"owner": who.user_id}, {"created_by": "system"}]}


@auth.on.store()
async def own_namespace(ctx: Auth.types.AuthContext, value: Any) -> None:
    """Store items live under the user's own namespace: ("<user>", ...)."""
    who = _who(ctx)
    if who.role == ADMIN_ROLE:
        return
    namespace = tuple(value.get("namespace") or ())
    assert namespace and namespace[0] == who.user_id, "store namespaces start with your user id"
