"""keel's YAML files (policy, limits, prices, API keys) are read by one loader (keel.yamlfile): a mistake in
any of them is reported as FILE:LINE: reason, with that file kind's own error class."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from keel.costs import PriceError, PriceTable
from keel.hotstate import LimitsPolicy, LimitsPolicyError
from keel.policies import PolicyError, PolicyMatrix
from keel.server.keys import ApiKeys, ApiKeysError
from keel.yamlfile import MAX_YAML_BYTES, YamlFileError

SHA = "c6531d2010139044fb0e82bd6a6ef4d45fc7b9d9e2576e336dbf91804fc41f18"
KINDS: dict[str, tuple[Callable[[Path], Any], type[YamlFileError], str]] = {
    "policy": (PolicyMatrix.load, PolicyError, "version: 1\nrules: []\n"),
    "limits": (LimitsPolicy.load, LimitsPolicyError, "version: 1\ntools:\n  t: {per_user: 1/minute}\n"),
    "prices": (PriceTable.load, PriceError, "version: 1\nmodels:\n  m: {input: 1, output: 2}\n"),
    "keys": (ApiKeys.load, ApiKeysError, f"keys:\n  - {{sha256: {SHA}, user: ops, role: admin}}\n"),
}
BAD: list[tuple[str, str, int, str]] = [
    ("limits", "version: 1\ntools:\n  t: {per_user: often}\n", 3, "tools.t.per_user: 'often' is not like"),
    ("limits", "version: 1\ntools:\n  t: {per_user: 1/minute}\n  t: {per_tool: 2/minute}\n", 4, "duplicate"),
    ("limits", "version: 1\ntools:\n  t:\n    per_hour: 1/hour\n", 4, "unknown key 'per_hour'"),
    ("limits", "version: 2\ntools: {}\n", 1, "unsupported version 2"),
    ("limits", "version: 1\ndefault: {}\n", 2, "default needs per_tool and/or per_user"),
    ("limits", "version: 1\ntools: [a, b]\n", 2, "tools must be a mapping"),
    ("prices", "version: 1\nmodels:\n  m: {input: 1}\n", 3, "needs exactly input and output"),
    ("prices", "version: 1\nmodels:\n  m: {input: 1, output: -2}\n", 3, "non-negative number, got -2"),
    ("prices", "version: 1\ntools:\n  send_email: free\n", 3, "non-negative number, got 'free'"),
    ("prices", "version: 1\nmodel:\n  m: {input: 1, output: 2}\n", 2, "unknown key 'model'"),
    ("prices", "version: 1\nmodels: {m: {input: 1, output: 2}\n", 3, "not valid YAML"),  # at the end
    ("keys", "keys:\n  - {sha256: abc, user: ops, role: admin}\n", 2, "sha256 must be 64 hex"),
    ("keys", f"keys:\n  - sha256: {SHA}\n    user: ops\n    role: root\n", 4, "unknown role 'root'"),
    ("keys", f"keys:\n  - {{sha256: {SHA}, user: '*', role: admin}}\n", 2, "user_id='*' is invalid"),
    ("keys", "keys: alice\n", 1, "keys must be a list"),
    ("keys", "users: []\n", 1, "unknown key 'users'"),
    ("keys", "", 1, "empty API keys"),
    ("policy", "version: 1\nrules:\n  - {role: a, tool: t, resource: r, effect: may}\n", 3, "unknown effect"),
]


def _write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "file.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _load(kind: str, path: Path) -> Any:
    load, _, _ = KINDS[kind]
    return load(path, roles={"admin", "user"}) if kind == "keys" else load(path)


@pytest.mark.parametrize("kind", KINDS)
def test_a_good_file_of_each_kind_loads(kind: str, tmp_path: Path) -> None:
    assert _load(kind, _write(tmp_path, KINDS[kind][2])) is not None


@pytest.mark.parametrize(("kind", "text", "line", "reason"), BAD)
def test_a_bad_file_of_each_kind_names_file_and_line(
    kind: str, text: str, line: int, reason: str, tmp_path: Path
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(KINDS[kind][1]) as info:
        _load(kind, path)
    err = info.value
    assert str(err) == f"{path}:{line}: {err.reason}" and reason in err.reason, str(err)
    assert pickle.loads(pickle.dumps(err)).args == err.args


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_refuses_a_missing_an_oversized_and_a_non_utf8_file(kind: str, tmp_path: Path) -> None:
    error = KINDS[kind][1]
    with pytest.raises(error, match=r":1: cannot read"):
        _load(kind, tmp_path / "missing.yaml")
    good = KINDS[kind][2]
    with pytest.raises(error, match=rf":1: .*larger than {MAX_YAML_BYTES} bytes"):
        _load(kind, _write(tmp_path, good + "#" + "x" * MAX_YAML_BYTES + "\n"))
    with pytest.raises(error, match=r":1: .*not UTF-8"):
        _load(kind, _write(tmp_path, good.encode() + b"# caf\xe9\n"))
