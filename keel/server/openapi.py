"""OpenAPI 3.1 description of keel's custom routes (served at /keel/openapi.json)."""

from __future__ import annotations

from typing import Any

from keel.ids import ID_PATTERN

__all__ = ["SPEC", "SINCE_PATTERN"]

SINCE_PATTERN = r"[0-9]{1,6}(\.[0-9]{1,3})?[smhd]?"
"""`since` of the A/B report: a number of seconds, minutes (the default unit), hours or days."""

_ERROR = {"$ref": "#/components/schemas/Error"}
_ID = {"type": "string", "pattern": ID_PATTERN}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "malformed request",
        401: "missing or unknown API key",
        403: "forbidden for this role",
        404: "not found (or not yours)",
        409: "conflicts with the current state",
        413: "request body over 64 KiB",
        422: "invalid field",
        503: "feature not enabled, or the records database is unavailable",
    }
    return {
        str(c): {"description": text[c], "content": {"application/json": {"schema": _ERROR}}} for c in codes
    }


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, **_json(schema)}


_STR, _INT = {"type": "string"}, {"type": "integer"}
_MONEY = {"type": "string", "pattern": r"^-?\d+(\.\d+)?$", "description": "USD, plain decimal"}
_OPT_STR = {"type": ["string", "null"]}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "required": required or list(props), "properties": props}


_RESULTS: dict[str, Any] = {
    "Health": _obj(
        {"status": {"enum": ["healthy", "ok", "degraded", "unhealthy"]}, "window_s": _INT},
        required=["status", "window_s"],
    ),
    "Approval": _obj(
        {
            "approval_id": _STR,
            "thread_id": _STR,
            "execution_id": _STR,
            "tool": _STR,
            "args": {"type": "object"},
            "args_hash": _STR,
            "resource": _OPT_STR,
            "rule": _OPT_STR,
            "reason": _OPT_STR,
            "requester": _STR,
            "tenant": _OPT_STR,
            "status": {"enum": ["pending", "approved", "edited", "rejected", "expired"]},
            "created_at": _STR,
            "expires_at": _STR,
            "decided_by": _OPT_STR,
            "decided_at": _OPT_STR,
            "decision_reason": _OPT_STR,
        }
    ),
    "ApprovalList": _obj({"approvals": {"type": "array", "items": _ref("Approval")}}),
    "Decided": _obj({"approval": _ref("Approval"), "thread_id": _STR, "run_id": _STR}),
    "FeedbackRecorded": _obj(
        {
            "id": _INT,
            "execution_id": _STR,
            "thread_id": _STR,
            "user_id": _STR,
            "role": _STR,
            "score": {"type": "number", "minimum": -1, "maximum": 1},
            "comment": _OPT_STR,
            "version": _STR,
            "created_at": _STR,
            "updated_at": _STR,
        }
    ),
    "Rollout": _obj(
        {
            "arms": {
                "type": "array",
                "items": _obj(
                    {
                        "arm": _STR,
                        "version": _STR,
                        "config": _STR,
                        "stable": {"type": "boolean"},
                        "file_weight": {"type": "number"},
                        "weight": {"type": "number"},
                        "share": {"type": "number"},
                        "allowed_users": _INT,
                        "stopped": {"type": "boolean"},
                        "stopped_at": _OPT_STR,
                        "stopped_by": _OPT_STR,
                        "stop_reason": _OPT_STR,
                        "window": {"type": "object"},
                    }
                ),
            }
        }
    ),
    "ABReport": _obj(
        {
            "since": _STR,
            "until": _STR,
            "confidence": {"type": "number"},
            "min_sample": _INT,
            "baseline": _OPT_STR,
            "baseline_source": {"enum": ["asked", "rollout", "most executions", None]},
            "excluded_unfinished": _INT,
            "metrics": {"type": "object"},
            "groups": {"type": "array", "items": {"type": "object"}},
            "comparisons": {"type": "array", "items": {"type": "object"}},
            "verdict": _STR,
            "notes": {"type": "array", "items": _STR},
        }
    ),
    "BudgetStatus": _obj(
        {
            "user_id": _STR,
            "month": _STR,
            "limit": _MONEY,
            "spent": _MONEY,
            "reserved": _MONEY,
            "remaining": _MONEY,
            "resets_at": _STR,
        }
    ),
}

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "keel custom routes", "version": "1"},
    "security": [{"ApiKey": []}, {"Bearer": []}],
    "paths": {
        "/keel/health": {
            "get": {
                "summary": "Health of the records database and recent runs",
                "parameters": [
                    {
                        "name": "window_s",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 604800},
                    }
                ],
                "responses": {"200": _ok("healthy or degraded", _ref("Health")), **_errors(401, 422, 503)},
            }
        },
        "/keel/metrics": {
            "get": {
                "summary": "keel's Prometheus metrics (text format)",
                "responses": {
                    "200": {
                        "description": "metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_errors(401, 503),
                },
            }
        },
        "/keel/approvals": {
            "get": {
                "summary": "Your approval requests; every request of the tenant for approver roles",
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "required": False,
                        "schema": {"enum": ["pending", "approved", "edited", "rejected", "expired", "all"]},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 500},
                    },
                ],
                "responses": {
                    "200": _ok("approvals, oldest first", _ref("ApprovalList")),
                    **_errors(401, 422, 503),
                },
            }
        },
        "/keel/approvals/{approval_id}": {
            "post": {
                "summary": "Approve, edit or reject a request; the thread resumes on the server",
                "parameters": [{"name": "approval_id", "in": "path", "required": True, "schema": _ID}],
                "requestBody": {"required": True, **_json({"$ref": "#/components/schemas/Decision"})},
                "responses": {
                    "202": _ok("decision recorded, resume queued", _ref("Decided")),
                    **_errors(400, 401, 403, 404, 409, 413, 422, 503),
                },
            }
        },
        "/keel/feedback": {
            "post": {
                "summary": "Feedback on one of your executions (admins: any); giving it again replaces yours",
                "requestBody": {"required": True, **_json({"$ref": "#/components/schemas/Feedback"})},
                "responses": {
                    "201": _ok("feedback recorded", _ref("FeedbackRecorded")),
                    **_errors(400, 401, 404, 413, 422, 503),
                },
            }
        },
        "/keel/report/ab": {
            "get": {
                "summary": "The A/B report: rollout arms (else versions) compared with a baseline (admins)",
                "parameters": [
                    {
                        "name": "since",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "pattern": f"^{SINCE_PATTERN}$"},
                    },
                    {
                        "name": "baseline",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "pattern": "^[!-~]{1,128}$"},
                    },
                    {
                        "name": "min_sample",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
                    },
                ],
                "responses": {"200": _ok("the report", _ref("ABReport")), **_errors(401, 403, 422, 503)},
            }
        },
        "/keel/budgets/{user_id}": {
            "get": {
                "summary": "A user's monthly budget (admins; users may read their own)",
                "parameters": [{"name": "user_id", "in": "path", "required": True, "schema": _ID}],
                "responses": {"200": _ok("budget", _ref("BudgetStatus")), **_errors(401, 403, 404, 503)},
            },
            "put": {
                "summary": "Set a user's monthly budget (admins)",
                "parameters": [{"name": "user_id", "in": "path", "required": True, "schema": _ID}],
                "requestBody": {"required": True, **_json({"$ref": "#/components/schemas/Budget"})},
                "responses": {
                    "200": _ok("budget", _ref("BudgetStatus")),
                    **_errors(400, 401, 403, 404, 413, 422, 503),
                },
            },
        },
        "/keel/rollout": {
            "get": {
                "summary": "The rollout: each arm's version, weight, share, stop and window (admins)",
                "responses": {"200": _ok("rollout", _ref("Rollout")), **_errors(401, 403, 404, 503)},
            }
        },
        "/keel/rollout/{arm}": {
            "put": {
                "summary": "Set an arm's weight for every replica (admins; audited)",
                "parameters": [{"name": "arm", "in": "path", "required": True, "schema": _ID}],
                "requestBody": {
                    "required": True,
                    **_json(
                        {
                            "type": "object",
                            "required": ["weight"],
                            "additionalProperties": False,
                            "properties": {"weight": {"type": "number", "minimum": 0, "maximum": 1000000}},
                        }
                    ),
                },
                "responses": {
                    "200": _ok("rollout", _ref("Rollout")),
                    **_errors(400, 401, 403, 404, 413, 422, 503),
                },
            }
        },
        "/keel/rollout/{arm}/stop": {
            "post": {
                "summary": "Stop an arm: its users' new runs start in the stable arm (admins; audited)",
                "parameters": [{"name": "arm", "in": "path", "required": True, "schema": _ID}],
                "requestBody": {
                    "required": True,
                    **_json(
                        {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 2000}},
                        }
                    ),
                },
                "responses": {
                    "200": _ok("rollout", _ref("Rollout")),
                    **_errors(400, 401, 403, 404, 409, 413, 422, 503),
                },
            }
        },
        "/keel/rollout/{arm}/resume": {
            "post": {
                "summary": "Resume a stopped arm (admins; audited)",
                "parameters": [{"name": "arm", "in": "path", "required": True, "schema": _ID}],
                "responses": {"200": _ok("rollout", _ref("Rollout")), **_errors(401, 403, 404, 409, 503)},
            }
        },
        "/keel/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {"200": _ok("OpenAPI", {"type": "object"}), **_errors(401, 503)},
            }
        },
    },
    "components": {
        "securitySchemes": {
            "ApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            "Bearer": {"type": "http", "scheme": "bearer"},
        },
        "schemas": {
            "Error": {"type": "object", "required": ["detail"], "properties": {"detail": {"type": "string"}}},
            "Decision": {
                "type": "object",
                "required": ["decision"],
                "additionalProperties": False,
                "properties": {
                    "decision": {"enum": ["approve", "edit", "reject"]},
                    "args": {"type": "object", "description": "the edited arguments (edit only)"},
                    "reason": {"type": "string", "maxLength": 2000},
                    "args_hash": {
                        "type": "string",
                        "pattern": "^[0-9a-f]{64}$",
                        "description": "the args_hash you were shown: a request whose args differ is a 409",
                    },
                },
            },
            "Feedback": {
                "type": "object",
                "required": ["execution_id", "score"],
                "additionalProperties": False,
                "properties": {
                    "execution_id": _ID,
                    "score": {
                        "type": "number",
                        "minimum": -1,
                        "maximum": 1,
                        "description": "-1/0/1, or a rating from 0 to 1 (kept to four decimals)",
                    },
                    "comment": {"type": "string", "maxLength": 2000},
                },
            },
            "Budget": {
                "type": "object",
                "required": ["monthly_usd"],
                "additionalProperties": False,
                "properties": {"monthly_usd": {"type": "number", "minimum": 0, "maximum": 1000000}},
            },
            **_RESULTS,
        },
    },
}
