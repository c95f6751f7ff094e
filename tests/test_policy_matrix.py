"""The permission matrix: the shipped policy, load-time validation, and first-match semantics."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keel.policies import ADMIN_ROLE, DEFAULT_POLICY, Decision, PolicyError, PolicyMatrix, Rule, UnknownRole

# --- the shipped policy ----------------------------------------------------------------------------------

DEFAULT_CASES = [
    # role, tool, resource, effect, rule index (None: default deny)
    ("admin", "delete_file", "home:bob/x", "allow", 1),
    ("admin", "anything", "", "allow", 1),
    ("user", "read_file", "home:bob/notes.txt", "deny", 2),
    ("user", "write_file", "home:bob/notes.txt", "deny", 2),
    ("user", "read_file", "own:notes.txt", "allow", 3),
    ("user", "read_file", "shared:doc.md", "allow", 3),
    ("user", "list_dir", "own:", "allow", 4),
    ("user", "search_web", "web:keel", "allow", 5),
    ("user", "write_file", "own:notes.txt", "allow", 6),
    ("user", "write_file", "shared:doc.md", "deny", 7),
    ("user", "delete_file", "own:notes.txt", "ask", 8),
    ("user", "send_email", "mail:alice@example.com", "ask", 9),
    ("user", "run_shell", "own:x", "deny", None),
    ("user", "Read_file", "own:x", "deny", None),  # patterns are case-sensitive
    ("viewer", "read_file", "shared:doc.md", "allow", 10),
    ("viewer", "list_dir", "shared:", "allow", 11),
    ("viewer", "read_file", "own:notes.txt", "deny", None),
    ("viewer", "write_file", "shared:doc.md", "deny", None),
    ("viewer", "search_web", "web:keel", "deny", None),
]


@pytest.fixture(scope="module")
def default() -> PolicyMatrix:
    return PolicyMatrix.load(DEFAULT_POLICY)


@pytest.mark.parametrize(("role", "tool", "resource", "effect", "index"), DEFAULT_CASES)
def test_default_policy_decisions(default: PolicyMatrix, role, tool, resource, effect, index) -> None:
    d = default.decide(role, tool, resource)
    assert d.effect == effect
    assert (d.rule.index if d.rule else None) == index


def test_default_policy_shape(default: PolicyMatrix) -> None:
    assert default.roles == {"admin", "user", "viewer"}
    assert default.is_approver("admin") and not default.is_approver("user")
    assert len(default.rules) == 11
    assert [r.expires_s for r in default.rules if r.effect == "ask"] == [3600.0, 3600.0]
    assert all(r.expires_s is None for r in default.rules if r.effect != "ask")


def test_decision_explains_itself(default: PolicyMatrix) -> None:
    d = default.decide("user", "write_file", "own:a.txt")
    rule = d.rule
    assert rule is not None
    assert d.describe() == (
        f"rule #6 at {DEFAULT_POLICY}:{rule.line} (role=user tool=write_* resource=own:*) -> allow"
    )
    assert d.as_dict() == {
        "decision": "allow",
        "rule": {
            "index": 6,
            "role": "user",
            "tool": "write_*",
            "resource": "own:*",
            "effect": "allow",
            "line": rule.line,
        },
        "source": str(DEFAULT_POLICY),
        "explanation": d.describe(),
    }
    none = default.decide("viewer", "rm", "x")
    assert none == Decision(effect="deny", rule=None, source=str(DEFAULT_POLICY))
    assert none.describe() == "no rule matched -> deny (default)"
    assert none.as_dict()["rule"] is None


def test_unknown_role_raises(default: PolicyMatrix) -> None:
    with pytest.raises(UnknownRole, match=r"unknown role 'root' \(known: admin, user, viewer\)") as info:
        default.decide("root", "read_file", "own:x")
    assert info.value.role == "root"
    assert pickle.loads(pickle.dumps(info.value)).args == info.value.args


# --- validation ------------------------------------------------------------------------------------------

HEAD = "version: 1\nrules:\n"
OK_RULE = '  - {role: a, tool: "*", resource: "x", effect: allow}\n'

INVALID = [
    # (yaml text, line, reason fragment)
    ("version: 1\nrules: [\n", 3, "not valid YAML"),
    ("", 1, "empty policy"),
    (HEAD + "  - {role: a, tool: *, resource: r, effect: allow}\n", 3, 'quote glob patterns: "*"'),
    ("version: 1\n\n# \x1f\nrules: []\n", 3, "not valid YAML: special character #x001f"),
    ("- 1\n- 2\n", 1, "policy must be a mapping"),
    ("just a string\n", 1, "policy must be a mapping"),
    ("rules: []\n", 1, "missing 'version'"),
    ("\n\nversion: 2\nrules: []\n", 3, "unsupported version 2"),
    ("version: '1'\nrules: []\n", 1, "unsupported version '1'"),
    ("version: true\nrules: []\n", 1, "unsupported version True"),
    ("version: 1\n", 1, "missing 'rules'"),
    ("version: 1\nrules: {a: 1}\n", 2, "'rules' must be a list"),
    ("version: 1\nrules:\n", 2, "'rules' must be a list"),
    ("version: 1\nrule: []\nrules: []\n", 2, "unknown key 'rule'"),
    ("version: 1\nversion: 1\nrules: []\n", 2, "duplicate key 'version'"),
    (HEAD + OK_RULE + "  - just a string\n", 4, "rule #2 must be a mapping"),
    (HEAD + "  - role: a\n    tool: t\n    resource: r\n", 3, "rule #1: missing field(s) effect"),
    (HEAD + "  - {role: a}\n", 3, "missing field(s) tool, resource, effect"),
    (
        HEAD + "  - role: a\n    tool: t\n    resource: r\n    effect: allow\n    when: now\n",
        7,
        "rule #1: unknown field 'when'",
    ),
    (
        HEAD + "  - role: a\n    tool: t\n    tool: u\n    resource: r\n    effect: allow\n",
        5,
        "rule #1: duplicate key 'tool'",
    ),
    (
        HEAD + "  - role: a\n    tool: 7\n    resource: r\n    effect: allow\n",
        4,
        "tool must be a non-empty string",
    ),
    (
        HEAD + "  - role: a\n    tool: t\n    resource: [r]\n    effect: allow\n",
        5,
        "resource must be a non-empty string",
    ),
    (HEAD + "  - {role: '', tool: t, resource: r, effect: allow}\n", 3, "role must be a non-empty string"),
    (HEAD + "  - role: a\n    tool: t\n    resource: r\n    effect: alow\n", 6, "unknown effect 'alow'"),
    (
        HEAD + "  - {role: a, tool: t, resource: r, effect: allow, expires_s: 5}\n",
        3,
        "expires_s is only allowed on ask rules",
    ),
    (
        HEAD + "  - {role: a, tool: t, resource: r, effect: ask, expires_s: 0}\n",
        3,
        "expires_s must be a positive number",
    ),
    (HEAD + "  - {role: a, tool: t, resource: r, effect: ask, expires_s: -1.5}\n", 3, "positive number"),
    (HEAD + "  - {role: a, tool: t, resource: r, effect: ask, expires_s: soon}\n", 3, "positive number"),
    (HEAD + "  - {role: a, tool: t, resource: r, effect: ask, expires_s: .inf}\n", 3, "positive number"),
    (HEAD + "  - {role: a, tool: t, resource: r, effect: ask, expires_s: true}\n", 3, "positive number"),
    (
        HEAD + OK_RULE + "  # comment\n" + OK_RULE.replace("allow", "deny"),
        5,
        "rule #2 duplicates rule #1 (line 3)",
    ),
    (
        HEAD + '  - {role: "*", tool: "*", resource: "*", effect: deny}\n' + OK_RULE,
        4,
        "rule #2 is unreachable: rule #1 (line 3",
    ),
    (
        HEAD
        + '  - {role: a, tool: "*", resource: "*", effect: deny}\n'
        + "  - {role: b, tool: t, resource: r, effect: ask}\n"
        + '  - {role: a, tool: "read_*", resource: "x", effect: allow}\n',
        5,
        "rule #3 is unreachable: rule #1",
    ),
    (
        "version: 1\nroles: [a, b]\nrules:\n" + "  - {role: c, tool: t, resource: r, effect: allow}\n",
        4,
        "rule #1 names unknown role 'c' (roles: a, b)",
    ),
    ("version: 1\nroles: a\nrules: []\n", 2, "roles must be a list of role names"),
    ("version: 1\nroles: [a, 'b*']\nrules: []\n", 2, "roles: 'b*' is not a role name"),
    ("version: 1\nroles:\n  - a\n  - a\nrules: []\n", 4, "roles: duplicate role 'a'"),
    (
        "version: 1\nroles: [a]\napprovers:\n  - a\n  - admin\nrules: []\n",
        5,
        "approver 'admin' is not a known role (a)",
    ),
    ("version: 1\napprovers: [a]\nrules:\n" + OK_RULE.replace("role: a", "role: b"), 2, "approver 'a'"),
    (
        "version: 1\nrules:\n  - {role: a, tool: !!python/name:os.system '', resource: r, effect: allow}\n",
        3,
        "cannot read value",
    ),
    (
        "version: 1\nrules:\n  - {role: a, tool: 2001-13-45, resource: r, effect: allow}\n",
        3,
        "cannot read value",
    ),
]


@pytest.mark.parametrize(("text", "line", "reason"), INVALID)
def test_validation_errors_name_file_and_line(text: str, line: int, reason: str) -> None:
    with pytest.raises(PolicyError) as info:
        PolicyMatrix.from_text(text, source="p.yaml")
    err = info.value
    assert (err.source, err.line) == ("p.yaml", line), str(err)
    assert reason in err.reason, str(err)
    assert str(err) == f"p.yaml:{line}: {err.reason}"
    assert pickle.loads(pickle.dumps(err)).args == err.args


def test_glob_roles_are_allowed_and_roles_default_to_literal_rule_roles() -> None:
    m = PolicyMatrix.from_text(
        HEAD
        + '  - {role: "*", tool: t, resource: r, effect: allow}\n'
        + "  - {role: b, tool: t, resource: s, effect: ask}\n"
    )
    assert m.roles == {"b"} and m.approvers == frozenset()
    assert m.decide("b", "t", "r").effect == "allow"
    assert m.source == "<string>"


def test_approvers_default_to_admin_when_it_is_a_role() -> None:
    m = PolicyMatrix.from_text("version: 1\nroles: [admin, user]\nrules: []\n")
    assert m.is_approver("admin") and not m.is_approver("user")


def test_the_admin_role_of_the_code_is_the_shipped_files_admin() -> None:
    """ADMIN_ROLE (cross-owner reads on the server, the default approver) names the role the shipped
    policy and the dev keys use: renaming one without the other would lock the operator out."""
    from keel.server.auth import DEV_KEYS_FILE
    from keel.server.keys import ApiKeys

    shipped = PolicyMatrix.load(DEFAULT_POLICY)
    assert ADMIN_ROLE in shipped.roles and shipped.is_approver(ADMIN_ROLE)
    ops = ApiKeys.load(DEV_KEYS_FILE, roles=shipped.roles).lookup("ops-dev-key")
    assert ops is not None and ops.role == ADMIN_ROLE


def test_oversized_file_rejected(tmp_path: Path) -> None:
    big = HEAD + "#" + "x" * (1 << 20) + "\n"
    with pytest.raises(PolicyError, match=r"^<string>:1: .*larger than"):
        PolicyMatrix.from_text(big)
    path = tmp_path / "big.yaml"
    path.write_text(big)
    with pytest.raises(PolicyError, match=rf"^{path}:1: .*larger than"):
        PolicyMatrix.load(path)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r":1: cannot read policy file"):
        PolicyMatrix.load(tmp_path / "missing.yaml")
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"version: 1\nrules: []\n# caf\xe9\n")
    with pytest.raises(PolicyError, match=r":1: policy file is not UTF-8"):
        PolicyMatrix.load(bad)


def test_empty_rule_list_denies_everything() -> None:
    m = PolicyMatrix.from_text("version: 1\nroles: [a, b]\nrules: []\n")
    for role in ("a", "b"):
        d = m.decide(role, "read_file", "own:x")
        assert (d.effect, d.rule) == ("deny", None)


@given(st.text(max_size=200))
@settings(max_examples=200, deadline=None)
def test_arbitrary_text_only_ever_raises_policy_error(text: str) -> None:
    try:
        PolicyMatrix.from_text(text)
    except PolicyError as err:
        assert str(err).startswith("<string>:")


# --- reload ----------------------------------------------------------------------------------------------


def test_reload_picks_up_edits_and_survives_broken_ones(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\nroles: [u]\nrules:\n  - {role: u, tool: t, resource: r, effect: deny}\n")
    old = PolicyMatrix.load(path)
    assert old.decide("u", "t", "r").effect == "deny"

    path.write_text("version: 1\nroles: [u]\nrules:\n  - {role: u, tool: t, resource: r, effect: allow}\n")
    new = old.reload()
    assert new.decide("u", "t", "r").effect == "allow" and new.source == old.source == str(path)
    assert old.decide("u", "t", "r").effect == "deny"

    path.write_text("version: 1\nroles: [u]\nrules:\n  - {role: u, tool: t, resource: r, effect: maybe}\n")
    with pytest.raises(PolicyError, match=rf"^{path}:4: rule #1: unknown effect 'maybe'"):
        new.reload()
    assert new.decide("u", "t", "r").effect == "allow"


def test_reload_of_text_policy_fails_cleanly() -> None:
    with pytest.raises(PolicyError, match=r"^<string>:1: cannot read policy file"):
        PolicyMatrix.from_text("version: 1\nrules: []\n").reload()


# --- first-match semantics against an independent reference ---------------------------------------------

ROLES, TOOLS, RESOURCES = ["a", "ab", "b"], ["read", "rx", "write", "w"], ["own:1", "own:2", "home:1", "x"]


def _patterns(names: list[str]) -> st.SearchStrategy[str]:
    prefixes = sorted({n[:k] + "*" for n in names for k in range(1, len(n))})
    return st.sampled_from([*names, "*", *prefixes])


def _ref_match(pattern: str, value: str) -> bool:
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return pattern == value


def _ref_decide(rules: list[tuple[str, str, str, str]], role: str, tool: str, resource: str) -> str:
    for r, t, s, effect in rules:
        if _ref_match(r, role) and _ref_match(t, tool) and _ref_match(s, resource):
            return effect
    return "deny"


def _shadowed(earlier: tuple[str, str, str], later: tuple[str, str, str]) -> bool:
    return all(p in ("*", q) for p, q in zip(earlier, later, strict=True))


_rule = st.tuples(
    _patterns(ROLES), _patterns(TOOLS), _patterns(RESOURCES), st.sampled_from(["allow", "deny", "ask"])
)
_call = st.tuples(
    st.sampled_from(ROLES), st.sampled_from([*TOOLS, "re", ""]), st.sampled_from([*RESOURCES, "own:", "h"])
)


@given(st.lists(_rule, max_size=12), st.lists(_call, min_size=1, max_size=20))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_decide_is_first_match(
    raw: list[tuple[str, str, str, str]], calls: list[tuple[str, str, str]]
) -> None:
    rules: list[tuple[str, str, str, str]] = []
    for rule in raw:  # drop what the loader would reject as duplicate or unreachable
        if not any(_shadowed(kept[:3], rule[:3]) for kept in rules):
            rules.append(rule)
    lines = [f'  - {{role: "{r}", tool: "{t}", resource: "{s}", effect: {e}}}' for r, t, s, e in rules]
    body = "".join(f"\n{line}" for line in lines) if lines else " []"
    m = PolicyMatrix.from_text(f"version: 1\nroles: {ROLES}\nrules:{body}\n")
    assert [(r.role, r.tool, r.resource, r.effect) for r in m.rules] == rules
    assert [r.line for r in m.rules] == list(range(4, 4 + len(rules)))
    for role, tool, resource in calls:
        d = m.decide(role, tool, resource)
        assert d.effect == _ref_decide(rules, role, tool, resource)
        if d.rule is None:
            assert d.effect == "deny"
        else:
            assert d.rule.matches(role, tool, resource)
            assert not any(r.matches(role, tool, resource) for r in m.rules[: d.rule.index - 1])


@given(_rule, _rule)
@settings(max_examples=200, deadline=None)
def test_loader_rejects_exactly_shadowed_pairs(first: tuple[str, ...], second: tuple[str, ...]) -> None:
    text = f"version: 1\nroles: {ROLES}\nrules:\n" + "".join(
        f'  - {{role: "{r}", tool: "{t}", resource: "{s}", effect: {e}}}\n' for r, t, s, e in (first, second)
    )
    if _shadowed(first[:3], second[:3]):
        with pytest.raises(PolicyError, match=r"^<string>:5: rule #2 (duplicates|is unreachable)"):
            PolicyMatrix.from_text(text)
    else:
        assert len(PolicyMatrix.from_text(text).rules) == 2


def test_rule_matches_uses_fnmatch_globs() -> None:
    rule = Rule(index=1, role="u*", tool="read_?", resource="[ab]:*", effect="allow", line=1)
    assert rule.matches("user", "read_x", "a:1")
    assert not rule.matches("user", "read_xy", "a:1")
    assert not rule.matches("User", "read_x", "a:1")
    assert not rule.matches("user", "read_x", "c:1")
