"""The run's identity on LangGraph Server: derived from the authenticated user, never from the client.

Off the server (CLI, library, notebooks) the caller's `RunContext` is used as given. On the server,
keel's auth handler puts the authenticated user in `config["configurable"]["langgraph_auth_user"]`
(also `runtime.server_info.user`); user, role and tenant come only from it, and a client-supplied
context that names someone else is refused.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime

from keel.context import InvalidContext, RunContext
from keel.errors import Forbidden

__all__ = [
    "Principal",
    "IdentityMismatch",
    "auth_principal",
    "principal_of",
    "run_context",
    "decision_from_server",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """Who a request is authenticated as (an API key's owner on the server)."""

    user_id: str
    role: str
    tenant: str = "default"


STUDIO_ROLE = "user"
"""Role given to LangGraph Studio's local user on `langgraph dev` (LangSmith-authenticated)."""


class IdentityMismatch(InvalidContext):
    """A client-supplied run context disagrees with the authenticated user."""


def _field(user: Any, name: str) -> Any:
    try:
        return user[name]
    except (KeyError, TypeError, AttributeError):
        return getattr(user, name, None)


def principal_of(user: Any) -> Principal:
    """The principal of an authenticated server user (keel's own, or Studio's local user)."""
    identity = str(_field(user, "identity") or "")
    if _field(user, "kind") == "StudioUser" or type(user).__name__ == "StudioUser":
        return Principal(user_id=identity or "studio", role=STUDIO_ROLE, tenant="default")
    role, tenant = _field(user, "role"), _field(user, "tenant")
    if not identity or not isinstance(role, str) or not isinstance(tenant, str):
        raise InvalidContext("the authenticated user carries no keel role/tenant; check the auth handler")
    return Principal(user_id=identity, role=role, tenant=tenant)


def auth_principal(config: RunnableConfig, runtime: Runtime[Any] | None = None) -> Principal | None:
    """The authenticated user of this run, or None off the server (or for keel's own in-process calls)."""
    user = (config.get("configurable") or {}).get("langgraph_auth_user")
    if user is None and runtime is not None and runtime.server_info is not None:
        user = runtime.server_info.user
    return None if user is None else principal_of(user)


def run_context(
    runtime: Runtime[RunContext], config: RunnableConfig, *, execution_id: str | None = None
) -> RunContext:
    """The run's identity; `execution_id` replaces the context's (a resumed execution keeps its id)."""
    ctx = runtime.context
    principal = auth_principal(config, runtime)
    if principal is None:
        if not isinstance(ctx, RunContext):
            raise InvalidContext("no run context: pass context={'user_id': ..., 'role': ..., 'tenant': ...}")
        return ctx if execution_id is None else replace(ctx, execution_id=execution_id)
    if isinstance(ctx, RunContext) and (ctx.user_id, ctx.role, ctx.tenant) != (
        principal.user_id,
        principal.role,
        principal.tenant,
    ):
        raise IdentityMismatch(
            f"run context names user {ctx.user_id!r} (role {ctx.role!r}, tenant {ctx.tenant!r}) "
            f"but the request is authenticated as {principal.user_id!r}; the context is refused"
        )
    base = ctx if isinstance(ctx, RunContext) else None
    return RunContext(
        user_id=principal.user_id,
        role=principal.role,
        tenant=principal.tenant,
        execution_id=execution_id or (base.execution_id if base else str(uuid.uuid4())),
        version=base.version if base else "",
    )


def decision_from_server(
    config: RunnableConfig, runtime: Runtime[Any], answer: Any, *, is_approver: Any
) -> Any:
    """A resume value sent straight to the server API: only an approver may decide, as themself.

    keel's approvals route records the decision before resuming (the row is then no longer pending),
    so this only applies to a raw `Command(resume=...)`: a requester cannot approve their own call,
    and the approver's name is the authenticated identity, not what the client wrote.
    """
    principal = auth_principal(config, runtime)
    if principal is None:
        return answer
    if not is_approver(principal.role):
        raise Forbidden(
            f"{principal.user_id!r} (role {principal.role!r}) may not decide approvals; "
            "an approver decides through POST /keel/approvals/{id}"
        )
    return {**answer, "approver": principal.user_id} if isinstance(answer, dict) else answer
