"""A small Hypothesis fuzzer driven by an OpenAPI 3.1 document (the subset keel's custom routes use).

Schemathesis was the first choice; its versions that fit langgraph-api's pin (jsonschema-rs < 0.45) need
hypothesis-jsonschema, which breaks on the pinned Hypothesis 6.170 ('many' object has no attribute
'more'), and every newer one (4.16+) needs a jsonschema-rs that langgraph-api 0.16.7 refuses. So:
operations come from the document, requests are drawn from its parameter and body schemas (valid, or
violating the schema, or not JSON at all), and `problems` checks a response the way schemathesis'
not_a_server_error, status_code_conformance, content_type_conformance and response_schema_conformance do.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

__all__ = ["Operation", "Request", "operations", "problems", "requests"]

# JSON strings may carry lone surrogates ("\\udc80"), which Python decodes into unencodable str values.
_TEXT = st.text(max_size=40) | st.text(st.characters(min_codepoint=0xD7F0, max_codepoint=0xE010), max_size=6)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
_NOT_JSON = st.sampled_from([b"", b"{", b"{not json", b"\xff\xfe\x00", b'{"a": 1,}', b"[1, 2", b"nul"])


@dataclass(frozen=True, kw_only=True, slots=True)
class Operation:
    """One method on one path of the document, with its $refs inlined."""

    method: str
    path: str
    spec: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    def params(self, where: str) -> list[dict[str, Any]]:
        return [p for p in self.spec.get("parameters", []) if p["in"] == where]

    def body_schema(self) -> dict[str, Any] | None:
        body = self.spec.get("requestBody")
        return body["content"]["application/json"]["schema"] if body else None


@dataclass(frozen=True, kw_only=True, slots=True)
class Request:
    """A concrete HTTP request; `malformed` says it breaks the document (so it must get a 4xx)."""

    method: str
    url: str
    query: dict[str, str]
    body: bytes | None
    malformed: bool

    def send(self, client: httpx.Client) -> httpx.Response:
        headers = {"content-type": "application/json"} if self.body is not None else {}
        return client.request(self.method, self.url, params=self.query, content=self.body, headers=headers)


def _inline(doc: dict[str, Any], node: Any) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = doc
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            return _inline(doc, target)
        return {k: _inline(doc, v) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(doc, v) for v in node]
    return node


def operations(doc: dict[str, Any]) -> list[Operation]:
    """Every operation the document describes."""
    return [
        Operation(method=method.upper(), path=path, spec=_inline(doc, spec))
        for path, methods in doc["paths"].items()
        for method, spec in methods.items()
    ]


def _valid(schema: dict[str, Any], value: Any) -> bool:
    return Draft202012Validator(schema).is_valid(value)


def values(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """JSON values that satisfy `schema` (enum, string/pattern, integer, number, object)."""
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True)
        return _TEXT.filter(lambda v: len(v) <= schema.get("maxLength", 40))
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "number":
        low, high = schema.get("minimum"), schema.get("maximum")
        return st.integers(low, high) | st.floats(low, high, allow_nan=False, allow_infinity=False)
    if kind == "object" and "properties" in schema:
        props = schema["properties"]
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {k: values(v) for k, v in props.items() if k in required},
            optional={k: values(v) for k, v in props.items() if k not in required},
        )
    if kind == "object":
        return st.dictionaries(st.text(max_size=8), _JSON, max_size=3)
    return _JSON


def _mutated(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A valid object with one required field dropped, one unknown field added, or one field replaced."""
    props = schema.get("properties", {})

    @st.composite
    def mutate(draw: st.DrawFn) -> Any:
        value = dict(draw(values(schema)))
        how = draw(st.sampled_from(["drop", "extra", "replace"]))
        if how == "drop" and value:
            value.pop(draw(st.sampled_from(sorted(value))))
        elif how == "replace" and props:
            value[draw(st.sampled_from(sorted(props)))] = draw(_JSON)
        else:
            value[draw(st.text(min_size=1, max_size=8))] = draw(_JSON)
        return value

    return mutate()


def wrong_values(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """JSON values that break `schema`: any other JSON value, or a near-miss object."""
    near = _mutated(schema) if schema.get("type") == "object" and "properties" in schema else st.nothing()
    return (near | _JSON).filter(lambda v: not _valid(schema, v))


def _query_valid(schema: dict[str, Any], raw: str) -> bool:
    if schema.get("type") == "integer":
        return re.fullmatch(r"-?\d{1,18}", raw) is not None and _valid(schema, int(raw))
    return _valid(schema, raw)


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@st.composite
def _request(draw: st.DrawFn, op: Operation, malformed: bool) -> Request:
    parts = [("path", p) for p in op.params("path")] + [("query", p) for p in op.params("query")]
    body_schema = op.body_schema()
    choices = [f"{where}:{p['name']}" for where, p in parts] + (["body"] if body_schema else [])
    broken = draw(st.sampled_from(choices)) if malformed else None
    url, query = op.path, {}
    for where, param in parts:
        schema, key = param["schema"], f"{where}:{param['name']}"
        if key == broken:
            text = st.text(min_size=1, max_size=40)
            raw = draw(text.filter(lambda s, sc=schema: not _query_valid(sc, s)))
        elif param.get("required") or where == "path" or draw(st.booleans()):
            raw = _as_text(draw(values(schema)))
        else:
            continue
        if where == "path":
            url = url.replace("{" + param["name"] + "}", quote(raw, safe="").replace(".", "%2E"))
        else:
            query[param["name"]] = raw
    body = None
    if body_schema is not None:
        if broken == "body":
            body = draw(st.one_of(_NOT_JSON, wrong_values(body_schema).map(lambda v: json.dumps(v).encode())))
        else:
            body = json.dumps(draw(values(body_schema))).encode()
    return Request(method=op.method, url=url, query=query, body=body, malformed=malformed)


def requests(op: Operation, *, malformed: bool) -> st.SearchStrategy[Request]:
    """Requests the document allows, or (malformed) ones that break exactly one parameter or the body."""
    return _request(op, malformed)


def problems(op: Operation, request: Request, response: httpx.Response) -> list[str]:
    """What is wrong with `response` according to the document (empty when it conforms)."""
    status, found = response.status_code, []
    if status >= 500:
        found.append(f"server error {status}: {response.text[:300]}")
    if request.malformed and status < 400:
        found.append(f"malformed input accepted with {status}")
    documented = op.spec["responses"].get(str(status)) or op.spec["responses"].get("default")
    if documented is None:
        found.append(f"status {status} is not documented (documented: {sorted(op.spec['responses'])})")
        return found
    content = documented.get("content", {})
    ctype = response.headers.get("content-type", "").split(";")[0].strip()
    if content and ctype not in content:
        found.append(f"content-type {ctype!r} is not documented for {status} ({sorted(content)})")
    elif ctype == "application/json":
        try:
            payload = response.json()
        except ValueError:
            return [*found, f"{status} body is not JSON: {response.text[:200]}"]
        errors = sorted(Draft202012Validator(content[ctype]["schema"]).iter_errors(payload), key=str)
        found += [f"{status} body breaks the documented schema: {e.message}" for e in errors[:3]]
    return found
