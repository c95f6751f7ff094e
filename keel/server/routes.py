"""keel's custom HTTP routes on LangGraph Server (`langgraph.json` → "http.app", custom-route auth on).

GET /keel/health · GET /keel/metrics · GET /keel/approvals · POST /keel/approvals/{id} ·
POST /keel/feedback · GET|PUT /keel/budgets/{user} · GET /keel/rollout · PUT /keel/rollout/{arm} ·
POST /keel/rollout/{arm}/stop|resume · GET /keel/report/ab · GET /keel/openapi.json. `/metrics` itself is
the server's own (unshadowable) route, so keel's Prometheus text is served at /keel/metrics.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from keel.app import server_backends as _backends
from keel.app.server_backends import server_backends
from keel.approvals import approval_view
from keel.budget import BudgetLedger, BudgetStatus
from keel.errors import Conflict, Forbidden, KeelError, NotFound
from keel.feedback import MAX_COMMENT_CHARS, SCORE_RULE, feedback_view, give_feedback
from keel.identity import Principal, principal_of
from keel.ids import is_id
from keel.policies import ADMIN_ROLE
from keel.records import RecordsUnavailable
from keel.rollout.router import Rollout
from keel.server.auth import load_keys
from keel.server.health import health_report
from keel.server.inbox import decide, visible_approvals
from keel.server.openapi import SINCE_PATTERN, SPEC

__all__ = ["app"]

_STATUSES = ("pending", "approved", "edited", "rejected", "expired", "all")
_MAX_BODY = 64 * 1024
_log = logging.getLogger(__name__)


class BadRequest(KeelError):
    """Malformed or invalid input: `status` is 400 (unreadable) or 422 (a field is wrong)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


_STATUS = {BadRequest: 422, NotFound: 404, Forbidden: 403, Conflict: 409}

Handler = Callable[[Request, Principal], Awaitable[Response]]


def _endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Authenticate, run, and map keel's named errors to one-line JSON 4xx answers."""

    async def endpoint(request: Request) -> Response:
        user = request.scope.get("user")
        if user is None or not getattr(user, "is_authenticated", False):
            return JSONResponse({"detail": "Unauthorized"}, status_code=401)
        try:
            await server_backends().ready()
            return await handler(request, principal_of(user))
        except BadRequest as exc:
            return JSONResponse({"detail": str(exc)}, status_code=exc.status)
        except (NotFound, Forbidden, Conflict) as exc:
            return JSONResponse({"detail": str(exc)}, status_code=_STATUS[type(exc)])
        except ValueError as exc:  # parse_decision and friends: a field is wrong
            return JSONResponse({"detail": str(exc)}, status_code=422)
        except RecordsUnavailable as exc:
            _log.error("keel route %s: %s", request.url.path, exc)
            return JSONResponse({"detail": "the records database is unavailable"}, status_code=503)

    return endpoint


async def _body(request: Request, allowed: set[str]) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > _MAX_BODY:
        raise BadRequest(f"request body over {_MAX_BODY} bytes", 413)
    try:
        body = json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest("the request body is not valid JSON", 400) from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    try:
        json.dumps(body, ensure_ascii=False).encode()
    except UnicodeEncodeError:  # a "\udXXX" escape without its pair: no store or log can take it
        raise BadRequest(
            "the request body has a string with a lone UTF-16 surrogate (invalid Unicode)"
        ) from None
    if extra := sorted(set(body) - allowed):
        raise BadRequest(f"unknown field(s): {', '.join(extra)} (allowed: {', '.join(sorted(allowed))})")
    return body


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"\d{1,9}", raw) or not low <= int(raw) <= high:
        raise BadRequest(f"{name} must be an integer from {low} to {high}")
    return int(raw)


def _path_id(request: Request, name: str) -> str:
    value = request.path_params[name]
    if not is_id(value):
        raise NotFound(f"no such {name.removesuffix('_id')}: malformed id")
    return value


async def health(request: Request, who: Principal) -> Response:
    report = await health_report(
        server_backends().records, window_s=_int_param(request, "window_s", 3600, 1, 604_800)
    )
    return JSONResponse(report, status_code=200)


async def metrics(request: Request, who: Principal) -> Response:
    from keel.observability.metrics import prometheus_text

    return PlainTextResponse(prometheus_text(), media_type="text/plain; version=0.0.4")


async def list_approvals(request: Request, who: Principal) -> Response:
    status = request.query_params.get("status", "pending")
    if status not in _STATUSES:
        raise BadRequest(f"status must be one of {', '.join(_STATUSES)}")
    b = server_backends()
    rows = await visible_approvals(
        b.records,
        b.policy.current(),
        who,
        status=None if status == "all" else status,
        limit=_int_param(request, "limit", 100, 1, 500),
    )
    return JSONResponse({"approvals": [approval_view(r) for r in rows]})


async def decide_approval(request: Request, who: Principal) -> Response:
    approval_id = _path_id(request, "approval_id")
    body = await _body(request, {"decision", "args", "reason", "args_hash"})
    if "reason" in body and (not isinstance(body["reason"], str) or len(body["reason"]) > 2000):
        raise BadRequest("reason must be a string of at most 2000 characters")
    if "args" in body and body.get("decision") != "edit":
        raise BadRequest("args are only accepted with decision 'edit'")
    b = server_backends()
    done = await decide(b.records, b.policy.current(), who, approval_id, body)
    return JSONResponse(
        {"approval": approval_view(done.approval), "thread_id": done.thread_id, "run_id": done.run_id},
        status_code=202,
    )


async def feedback(request: Request, who: Principal) -> Response:
    body = await _body(request, {"execution_id", "score", "comment"})
    execution_id, score, comment = body.get("execution_id"), body.get("score"), body.get("comment")
    if not is_id(execution_id):
        raise BadRequest("execution_id must be an execution id string")
    if isinstance(score, bool) or not isinstance(score, int | float):
        raise BadRequest(f"score must be {SCORE_RULE}")
    if comment is not None and (not isinstance(comment, str) or len(comment) > MAX_COMMENT_CHARS):
        raise BadRequest(f"comment must be a string of at most {MAX_COMMENT_CHARS} characters")
    b = server_backends()
    row = await give_feedback(  # a score out of range: ValueError naming the rule, a 422
        b.records,
        execution_id=execution_id,
        score=score,
        comment=comment,
        user_id=who.user_id,
        role=who.role,
        tenant=who.tenant,
        langsmith=b.telemetry.langsmith,
    )
    return JSONResponse(feedback_view(row), status_code=201)


async def report_ab(request: Request, who: Principal) -> Response:
    """The A/B report (`keel report ab`), for admins: ?since=7d&baseline=ARM&min_sample=30."""
    from keel.observability.health import parse_window

    if who.role != ADMIN_ROLE:
        raise Forbidden("only admins read the A/B report")
    b = server_backends()
    since = request.query_params.get("since", "7d")
    if not re.fullmatch(SINCE_PATTERN, since):
        raise BadRequest("since must be a number with s, m, h or d, e.g. 7d")
    try:
        span = parse_window(since)
    except ValueError as exc:
        raise BadRequest(f"since: {exc}") from None
    min_sample = _int_param(request, "min_sample", b.settings.report_min_sample, 1, 1_000_000)
    try:
        report = await b.records.ab_report(
            since=span,
            baseline=request.query_params.get("baseline"),
            rollout_stable=b.rollout.spec().stable if b.rollout is not None else None,
            min_sample=min_sample,
        )
    except KeyError as exc:  # a baseline that did not run in the window
        raise BadRequest(str(exc.args[0])) from None
    return JSONResponse(report.as_dict())


def _ledger() -> BudgetLedger:
    ledger = server_backends().ledger
    if ledger is None:
        raise _Disabled("budgets are not enabled in this deployment")
    return ledger


class _Disabled(BadRequest):
    def __init__(self, message: str) -> None:
        super().__init__(message, 503)


async def get_budget(request: Request, who: Principal) -> Response:
    user_id = _path_id(request, "user_id")
    if who.role != ADMIN_ROLE and who.user_id != user_id:
        raise Forbidden("only admins read other users' budgets")
    return JSONResponse(_budget_view(await _ledger().status(user_id)))


async def put_budget(request: Request, who: Principal) -> Response:
    user_id = _path_id(request, "user_id")
    if who.role != ADMIN_ROLE:
        raise Forbidden("only admins set budgets")
    body = await _body(request, {"monthly_usd"})
    amount = body.get("monthly_usd")
    if isinstance(amount, bool) or not isinstance(amount, int | float) or not 0 <= amount <= 1_000_000:
        raise BadRequest("monthly_usd must be a number from 0 to 1000000")
    ledger = _ledger()
    await ledger.set_limit(user_id, Decimal(str(amount)))
    return JSONResponse(_budget_view(await ledger.status(user_id)))


def _budget_view(status: BudgetStatus) -> dict[str, Any]:
    """The ledger's status with money as plain decimals ("0.00000000", never "0E-8")."""
    view = status.as_dict()
    for name in ("limit", "spent", "reserved", "remaining"):
        view[name] = f"{getattr(status, name):f}"
    return view


def _rollout(who: Principal) -> Rollout:
    if who.role != ADMIN_ROLE:
        raise Forbidden("only admins see and change the rollout")
    rollout = server_backends().rollout
    if rollout is None:
        raise NotFound("no rollout in force (rollout.yaml beside keel.yaml, or KEEL_ROLLOUT_FILE)")
    return rollout


async def _rollout_view(rollout: Rollout) -> Response:
    return JSONResponse({"arms": [a.as_dict() for a in await rollout.status()]})


async def get_rollout(request: Request, who: Principal) -> Response:
    return await _rollout_view(_rollout(who))


async def set_arm(request: Request, who: Principal) -> Response:
    rollout, arm = _rollout(who), _path_id(request, "arm")
    body = await _body(request, {"weight"})
    weight = body.get("weight")
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight <= 1_000_000:
        raise BadRequest("weight must be a number from 0 to 1000000")
    await rollout.set_weight(arm, float(weight), by=who.user_id, role=who.role)
    return await _rollout_view(rollout)


async def stop_arm(request: Request, who: Principal) -> Response:
    rollout, arm = _rollout(who), _path_id(request, "arm")
    body = await _body(request, {"reason"})
    reason = body.get("reason", "stopped by an operator")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 2000:
        raise BadRequest("reason must be a non-empty string of at most 2000 characters")
    if not await rollout.stop(arm, by=who.user_id, role=who.role, reason=reason):
        raise Conflict(f"arm {arm!r} is stopped already")
    return await _rollout_view(rollout)


async def resume_arm(request: Request, who: Principal) -> Response:
    rollout, arm = _rollout(who), _path_id(request, "arm")
    if not await rollout.resume(arm, by=who.user_id, role=who.role):
        raise Conflict(f"arm {arm!r} is not stopped")
    return await _rollout_view(rollout)


async def openapi(request: Request, who: Principal) -> Response:
    return JSONResponse(SPEC)


@asynccontextmanager
async def lifespan(_app: Starlette) -> AsyncIterator[None]:
    """Build, migrate and load keys off the event loop before the first request; close on shutdown."""
    await _backends.start()
    await load_keys()
    yield
    await _backends.stop()


app = Starlette(
    lifespan=lifespan,
    routes=[
        Route("/keel/health", _endpoint(health), methods=["GET"]),
        Route("/keel/metrics", _endpoint(metrics), methods=["GET"]),
        Route("/keel/approvals", _endpoint(list_approvals), methods=["GET"]),
        Route("/keel/approvals/{approval_id}", _endpoint(decide_approval), methods=["POST"]),
        Route("/keel/feedback", _endpoint(feedback), methods=["POST"]),
        Route("/keel/report/ab", _endpoint(report_ab), methods=["GET"]),
        Route("/keel/budgets/{user_id}", _endpoint(get_budget), methods=["GET"]),
        Route("/keel/budgets/{user_id}", _endpoint(put_budget), methods=["PUT"]),
        Route("/keel/rollout", _endpoint(get_rollout), methods=["GET"]),
        Route("/keel/rollout/{arm}", _endpoint(set_arm), methods=["PUT"]),
        Route("/keel/rollout/{arm}/stop", _endpoint(stop_arm), methods=["POST"]),
        Route("/keel/rollout/{arm}/resume", _endpoint(resume_arm), methods=["POST"]),
        Route("/keel/openapi.json", _endpoint(openapi), methods=["GET"]),
    ],
)
