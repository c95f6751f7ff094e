"""Fuzzing keel's custom routes on a live `langgraph dev` from their own OpenAPI document.

The document is the one the server serves at /keel/openapi.json, fetched with the admin dev key so every
operation (budgets included) is reachable. Each operation gets requests the document allows and requests
that break exactly one parameter or the body (or are not JSON at all), deterministically and with a small
example budget. Every response must not be a 5xx, must use a documented status code and content type and
match the documented body schema; a malformed request must get a 4xx. (Why not schemathesis: see
tests/openapi_fuzz.py.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langgraph_sdk import get_client
from live_server import langgraph_dev
from openapi_fuzz import Operation, Request, operations, problems, requests

OPS = "ops-dev-key"  # the admin dev key (keel/server/dev_keys.yaml)
EXAMPLES = 25  # per operation and mode; the whole file stays well under 40 s
OPERATIONS = [
    ("GET", "/keel/health"),
    ("GET", "/keel/metrics"),
    ("GET", "/keel/approvals"),
    ("POST", "/keel/approvals/{approval_id}"),
    ("POST", "/keel/feedback"),
    ("GET", "/keel/report/ab"),
    ("GET", "/keel/budgets/{user_id}"),
    ("PUT", "/keel/budgets/{user_id}"),
    ("GET", "/keel/rollout"),
    ("PUT", "/keel/rollout/{arm}"),
    ("POST", "/keel/rollout/{arm}/stop"),
    ("POST", "/keel/rollout/{arm}/resume"),
    ("GET", "/keel/openapi.json"),
]
_NO_INPUT = (("GET", "/keel/metrics"), ("GET", "/keel/rollout"), ("GET", "/keel/openapi.json"))
WITH_INPUT = [op for op in OPERATIONS if op not in _NO_INPUT]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    home = tmp_path_factory.mktemp("keel-fuzz-home")
    (home / "workspace").mkdir()
    with langgraph_dev(home) as url, httpx.Client(base_url=url, headers={"x-api-key": OPS}, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
async def execution_id(live: httpx.Client) -> str:
    """A real finished execution of the admin's, so feedback input reaches the records store."""
    client = get_client(url=str(live.base_url).rstrip("/"), api_key=OPS)
    thread = (await client.threads.create())["thread_id"]
    final = await client.runs.wait(
        thread, "keel", input={"messages": [{"role": "human", "content": "list ~/"}]}
    )
    assert final["status"] == "succeeded", final
    return final["execution_id"]


@pytest.fixture(scope="module")
def document(live: httpx.Client) -> dict[str, Any]:
    r = live.get("/keel/openapi.json")
    assert r.status_code == 200, r.text
    return r.json()


def _operation(document: dict[str, Any], method: str, path: str) -> Operation:
    return next(op for op in operations(document) if (op.method, op.path) == (method, path))


BOUNDED = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _fuzz(live: httpx.Client, op: Operation, *, malformed: bool) -> None:
    @given(request=requests(op, malformed=malformed))
    @BOUNDED
    def check(request: Request) -> None:
        response = request.send(live)
        found = problems(op, request, response)
        assert not found, f"{request.method} {request.url} {request.query} {request.body!r}: {found}"

    check()


def test_the_document_describes_every_route(document: dict[str, Any]) -> None:
    assert {(op.method, op.path) for op in operations(document)} == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_valid_input_never_gets_a_server_error_and_matches_the_document(
    live: httpx.Client, document: dict[str, Any], method: str, path: str
) -> None:
    _fuzz(live, _operation(document, method, path), malformed=False)


@pytest.mark.parametrize(("method", "path"), WITH_INPUT, ids=[f"{m} {p}" for m, p in WITH_INPUT])
def test_malformed_input_gets_a_documented_4xx(
    live: httpx.Client, document: dict[str, Any], method: str, path: str
) -> None:
    _fuzz(live, _operation(document, method, path), malformed=True)


def _clean(text: str) -> bool:
    """At most 2000 characters of real Unicode (no lone surrogates)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return len(text) <= 2000


def test_feedback_on_a_real_execution_takes_any_text_and_rejects_bad_scores(
    live: httpx.Client, document: dict[str, Any], execution_id: str
) -> None:
    op = _operation(document, "POST", "/keel/feedback")
    scores = st.sampled_from([-1, 0, 1]) | st.integers() | st.floats() | st.text(max_size=3) | st.none()
    lone = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=4)
    comments = st.text(max_size=80) | lone | st.text(min_size=2001, max_size=2100) | st.integers() | st.none()

    @given(score=scores, comment=comments)
    @BOUNDED
    def check(score: Any, comment: Any) -> None:
        body = {"execution_id": execution_id, "score": score, "comment": comment}
        score_ok = type(score) in (int, float) and -1 <= score <= 1  # NaN compares false: refused
        ok = score_ok and (comment is None or (isinstance(comment, str) and _clean(comment)))
        if comment is None:
            del body["comment"]
        raw = json.dumps(body).encode()
        request = Request(method="POST", url="/keel/feedback", query={}, body=raw, malformed=not ok)
        response = request.send(live)
        assert not problems(op, request, response), (body, response.status_code, response.text)
        assert (response.status_code == 201) == ok, (body, response.status_code, response.text)

    check()
    raw = json.dumps({"execution_id": execution_id, "score": 1, "comment": "\ud800"}).encode()  # "\\ud800"
    lone = live.post("/keel/feedback", content=raw, headers={"content-type": "application/json"})
    assert lone.status_code == 422 and "lone UTF-16 surrogate" in lone.json()["detail"], lone.text
