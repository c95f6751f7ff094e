"""Why the matrix decides a call the way it does: every rule tried, and which pattern stopped it."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from keel.policies.matrix import Decision, PolicyMatrix, Rule

__all__ = ["Explanation", "RuleTrial", "explain"]

_PARTS = ("role", "tool", "resource")


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleTrial:
    """One rule tried before (or as) the decision: the parts of the call its patterns did not match."""

    rule: Rule
    failed: tuple[str, ...]
    """``role``, ``tool`` and/or ``resource``; empty for the rule that matched."""

    def describe(self, call: dict[str, str]) -> str:
        r = self.rule
        where = f"rule #{r.index} (line {r.line}: {r.patterns()} -> {r.effect})"
        if not self.failed:
            return f"{where}: matches"
        why = "; ".join(f"{p} {call[p]!r} does not match {getattr(r, p)!r}" for p in self.failed)
        return f"{where}: skipped, {why}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Explanation:
    """The decision for one call and the trail of rules that led to it."""

    role: str
    tool: str
    resource: str
    decision: Decision
    trials: tuple[RuleTrial, ...]

    def lines(self) -> list[str]:
        """Human-readable: one line per rule tried, then the outcome."""
        call = {"role": self.role, "tool": self.tool, "resource": self.resource}
        out = [f"call: role={self.role} tool={self.tool} resource={self.resource}"]
        out += [f"  {t.describe(call)}" for t in self.trials]
        out.append(f"decision: {self.decision.effect} ({self.decision.describe()})")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.decision.as_dict(),
            "role": self.role,
            "tool": self.tool,
            "resource": self.resource,
            "tried": [
                {
                    "index": t.rule.index,
                    "line": t.rule.line,
                    "patterns": t.rule.patterns(),
                    "failed": list(t.failed),
                }
                for t in self.trials
            ],
        }


def explain(matrix: PolicyMatrix, role: str, tool: str, resource: str) -> Explanation:
    """The decision (as ``matrix.decide`` gives it) with every earlier rule and the patterns that failed."""
    decision = matrix.decide(role, tool, resource)
    call = (role, tool, resource)
    trials = []
    for rule in matrix.rules:
        failed = tuple(p for p, v in zip(_PARTS, call, strict=True) if not fnmatchcase(v, getattr(rule, p)))
        trials.append(RuleTrial(rule=rule, failed=failed))
        if not failed:
            break
    return Explanation(role=role, tool=tool, resource=resource, decision=decision, trials=tuple(trials))
