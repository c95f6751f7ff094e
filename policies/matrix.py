"""Permission matrix: which role may call which tool on which resource.

A policy file is an ordered list of rules. The first rule whose role, tool and resource glob patterns
(``fnmatch.fnmatchcase``, case-sensitive) all match a call decides it: ``allow``, ``deny`` or ``ask``
(a human approver decides). A call that no rule matches is denied. Everything is checked at load time,
and every error names the file and line: ``PolicyError("policies/x.yaml:7: unknown effect 'alow' ...")``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from importlib import resources
from itertools import product
from pathlib import Path
from typing import Any, Literal, cast, get_args

import yaml

from keel.yamlfile import MAX_YAML_BYTES, YamlDoc, YamlFileError, line_of

__all__ = [
    "ADMIN_ROLE",
    "DEFAULT_POLICY",
    "EFFECTS",
    "MAX_POLICY_BYTES",
    "Decision",
    "Effect",
    "PolicyError",
    "PolicyMatrix",
    "Rule",
    "UnknownRole",
]

Effect = Literal["allow", "deny", "ask"]
EFFECTS: frozenset[str] = frozenset(get_args(Effect))
MAX_POLICY_BYTES = MAX_YAML_BYTES
DEFAULT_POLICY = Path(str(resources.files(__package__).joinpath("default.yaml")))
"""The policy shipped with keel (``policies/default.yaml``)."""
ADMIN_ROLE = "admin"
"""The role that sees every owner's and tenant's data on the server (threads, approvals, budgets, feedback)
and approves by default when a policy lists no ``approvers``. A code constant, not a policy fact: the
matrix decides tool calls and is hot-reloaded from an operator's file; cross-tenant reads stay fixed."""

_TOP_KEYS = ("version", "roles", "approvers", "rules")
_RULE_FIELDS = ("role", "tool", "resource", "effect")
_RULE_KEYS = (*_RULE_FIELDS, "expires_s")
_GLOB_CHARS = frozenset("*?[")
_KIND = "policy file"


class PolicyError(YamlFileError):
    """A policy file is unreadable or invalid; the message is always ``<file>:<line>: <reason>``."""


class UnknownRole(ValueError):
    """``decide`` was asked about a role the matrix does not know."""

    def __init__(self, role: str, known: Iterable[str]) -> None:
        self.role, self.known = role, tuple(sorted(known))
        super().__init__(f"unknown role {role!r} (known: {', '.join(self.known) or 'none'})")

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.role, self.known)


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """One rule of the matrix; ``index`` is 1-based in file order, ``line`` is where the rule starts."""

    index: int
    role: str
    tool: str
    resource: str
    effect: Effect
    line: int
    expires_s: float | None = None
    """For ``ask`` rules: how long a pending approval stays valid (None: the runtime's default)."""

    def matches(self, role: str, tool: str, resource: str) -> bool:
        """True when all three patterns match the call."""
        return all(map(fnmatchcase, (role, tool, resource), (self.role, self.tool, self.resource)))

    def patterns(self) -> str:
        """``role=.. tool=.. resource=..``, as used in explanations and errors."""
        return f"role={self.role} tool={self.tool} resource={self.resource}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """The outcome of one ``decide`` call and the rule behind it (None: nothing matched, default deny)."""

    effect: Effect
    rule: Rule | None
    source: str

    def describe(self) -> str:
        """One human-readable line explaining the decision."""
        if (r := self.rule) is None:
            return f"no rule matched -> {self.effect} (default)"
        return f"rule #{r.index} at {self.source}:{r.line} ({r.patterns()}) -> {self.effect}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for records and logs."""
        keys = ("index", "role", "tool", "resource", "effect", "line")
        rule = None if self.rule is None else {k: getattr(self.rule, k) for k in keys}
        return {"decision": self.effect, "rule": rule, "source": self.source, "explanation": self.describe()}


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyMatrix:
    """A validated, immutable policy. Build it with ``load`` or ``from_text``, which check everything."""

    source: str
    """Where the policy came from: the path as given to ``load``, or ``from_text``'s ``source``."""
    roles: frozenset[str]
    """Declared roles, or the literal (non-glob) roles named in the rules when none are declared."""
    approvers: frozenset[str]
    """Roles allowed to decide ``ask`` calls (default: ``admin`` when it is a role)."""
    rules: tuple[Rule, ...] = field(repr=False)
    """The rules in evaluation order."""
    path: Path | None = field(default=None, repr=False, compare=False)
    """Absolute path of the file ``load`` read (``reload`` re-reads it; None: re-read ``source``)."""

    @classmethod
    def load(cls, path: str | Path) -> PolicyMatrix:
        """Read and validate a policy file; raises PolicyError."""
        doc = YamlDoc.load(path, error=PolicyError, kind=_KIND)
        return _Parser(doc).matrix(Path(path).absolute())

    @classmethod
    def from_text(cls, text: str, source: str = "<string>") -> PolicyMatrix:
        """Validate policy YAML given as a string; ``source`` names it in errors and decisions."""
        return _Parser(YamlDoc(text, source, error=PolicyError, kind=_KIND)).matrix(None)

    def reload(self) -> PolicyMatrix:
        """Re-read the file into a new matrix; on error this one is untouched and still usable."""
        return replace(PolicyMatrix.load(self.path or self.source), source=self.source)

    def is_approver(self, role: str) -> bool:
        """True when ``role`` may approve or reject an ``ask`` call."""
        return role in self.approvers

    def decide(self, role: str, tool: str, resource: str) -> Decision:
        """First matching rule wins; no match denies. Raises UnknownRole for a role not in ``roles``."""
        if role not in self.roles:
            raise UnknownRole(role, self.roles)
        for rule in self.rules:
            if rule.matches(role, tool, resource):
                return Decision(effect=rule.effect, rule=rule, source=self.source)
        return Decision(effect="deny", rule=None, source=self.source)


def _is_glob(pattern: str) -> bool:
    return not _GLOB_CHARS.isdisjoint(pattern)


class _Parser:
    """Reads a policy document (a `YamlDoc`) into a matrix; every error points at a node's line."""

    def __init__(self, doc: YamlDoc) -> None:
        self.doc, self.source = doc, doc.source
        self.fail, self.value = doc.fail, doc.value

    def names(self, node: yaml.Node, what: str) -> dict[str, int]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, f"{what} must be a list of role names")
        out: dict[str, int] = {}
        for item in node.value:
            name = self.value(item)
            if not isinstance(name, str) or not name or _is_glob(name):
                raise self.fail(item, f"{what}: {name!r} is not a role name (a non-empty literal)")
            if name in out:
                raise self.fail(item, f"{what}: duplicate role {name!r}")
            out[name] = line_of(item)
        return out

    def matrix(self, path: Path | None) -> PolicyMatrix:
        top = self.doc.top(_TOP_KEYS, name="policy", expects="'version' and 'rules'")
        self.doc.version(top)
        if "rules" not in top:
            raise self.fail(1, "missing 'rules' (a list; may be empty)")
        if not isinstance(top["rules"], yaml.SequenceNode):
            raise self.fail(top["rules"], "'rules' must be a list")
        rules = tuple(self.rule(i, node) for i, node in enumerate(top["rules"].value, 1))
        declared = frozenset(self.names(top["roles"], "roles")) if "roles" in top else None
        roles = _check_rules(rules, declared, self.source)
        approvers = frozenset({ADMIN_ROLE} & roles)
        if "approvers" in top:
            listed = self.names(top["approvers"], "approvers")
            for name, line in listed.items():
                if name not in roles:
                    raise self.fail(
                        line, f"approver {name!r} is not a known role ({', '.join(sorted(roles))})"
                    )
            approvers = frozenset(listed)
        return PolicyMatrix(source=self.source, roles=roles, approvers=approvers, rules=rules, path=path)

    def rule(self, index: int, node: yaml.Node) -> Rule:
        where = f"rule #{index}"
        fields = self.doc.mapping(node, where, _RULE_KEYS, noun="field")
        if missing := [f for f in _RULE_FIELDS if f not in fields]:
            raise self.fail(node, f"{where}: missing field(s) {', '.join(missing)}")
        values: dict[str, str] = {}
        for name in _RULE_FIELDS:
            if not isinstance(val := self.value(fields[name]), str) or not val:
                raise self.fail(fields[name], f"{where}: {name} must be a non-empty string, got {val!r}")
            values[name] = val
        if (effect := values.pop("effect")) not in EFFECTS:
            raise self.fail(fields["effect"], f"{where}: unknown effect {effect!r} (allow, deny or ask)")
        expires_s = None
        if (exp_node := fields.get("expires_s")) is not None:
            if effect != "ask":
                raise self.fail(exp_node, f"{where}: expires_s is only allowed on ask rules")
            raw = self.value(exp_node)
            if type(raw) not in (int, float) or not math.isfinite(raw) or raw <= 0:
                raise self.fail(exp_node, f"{where}: expires_s must be a positive number, got {raw!r}")
            expires_s = float(raw)
        return Rule(
            index=index, effect=cast(Effect, effect), line=line_of(node), expires_s=expires_s, **values
        )


def _check_rules(rules: tuple[Rule, ...], declared: frozenset[str] | None, source: str) -> frozenset[str]:
    """Reject duplicate, unreachable and unknown-role rules; return the matrix's roles."""
    seen: dict[tuple[str, str, str], Rule] = {}
    for rule in rules:
        key = (rule.role, rule.tool, rule.resource)
        if (first := seen.get(key)) is not None:
            raise PolicyError(
                source,
                rule.line,
                f"rule #{rule.index} duplicates rule #{first.index} (line {first.line}): {rule.patterns()}",
            )
        # An earlier rule covers this one when each of its patterns is "*" or identical to this one's.
        if covering := [seen[c] for c in product(*((p, "*") for p in key)) if c in seen]:
            first = min(covering, key=lambda r: r.index)
            raise PolicyError(
                source,
                rule.line,
                f"rule #{rule.index} is unreachable: rule #{first.index} "
                f"(line {first.line}: {first.patterns()}) matches every call it would",
            )
        seen[key] = rule
        if declared is not None and not _is_glob(rule.role) and rule.role not in declared:
            raise PolicyError(
                source,
                rule.line,
                f"rule #{rule.index} names unknown role {rule.role!r} (roles: {', '.join(sorted(declared))})",
            )
    return declared if declared is not None else frozenset(r.role for r in rules if not _is_glob(r.role))
