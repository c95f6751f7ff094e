"""One identifier rule (keel.ids): the run context, memory scopes, the server's routes and its OpenAPI
description accept and refuse the same ids."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from keel.context import InvalidContext, RunContext
from keel.errors import NotFound
from keel.ids import is_id
from keel.memory.types import InvalidMemoryScope, MemoryScope
from keel.server.openapi import SPEC
from keel.server.routes import _path_id

GOOD = ["alice", "a", "ops@example.com", "u-1.x_y", "9f1c2e4b6a8d4c0e9b7a5d3c1e2f4a6b", "x" * 128]
BAD = ["", "*", "$where", "-lead", ".hidden", "a b", "a/b", "it's", "x" * 129, "ä", "a\n"]


def _context_takes(value: str) -> bool:
    try:
        RunContext(user_id=value)
    except InvalidContext:
        return False
    return True


def _scope_takes(value: str) -> bool:
    try:
        MemoryScope(user_id=value)
    except InvalidMemoryScope:
        return False
    return True


def _route_takes(value: str) -> bool:
    try:
        _path_id(SimpleNamespace(path_params={"approval_id": value}), "approval_id")
    except NotFound:
        return False
    return True


def _openapi_takes(value: str) -> bool:
    params = SPEC["paths"]["/keel/approvals/{approval_id}"]["post"]["parameters"]
    return re.search(params[0]["schema"]["pattern"], value) is not None


@pytest.mark.parametrize("value", GOOD + BAD)
def test_every_reader_of_an_id_follows_one_rule(value: str) -> None:
    expected = value in GOOD
    assert is_id(value) is expected
    assert [_context_takes(value), _scope_takes(value), _route_takes(value)] == [expected] * 3
    if value != "a\n":  # an ECMA `$` (JSON Schema's `pattern`) never matches before a final newline
        assert _openapi_takes(value) is expected
