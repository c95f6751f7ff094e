"""What a node step decided, read from its input state and its update: span attributes, events, log fields."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["StepSummary", "node_summary"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StepSummary:
    """`keel.*` attributes of a node span, and one event per decision taken in the step."""

    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)


def _permission(call: Mapping[str, Any]) -> str:
    status = call.get("status")
    if status == "allowed":
        return "allow"
    if status == "ask":
        return "ask"
    return "deny" if call.get("rule") else "invalid"


def _event(call: Mapping[str, Any], decision: str, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "gen_ai.tool.name": str(call.get("name") or "unknown"),
        "gen_ai.tool.call.id": str(call.get("id", "")),
        "keel.decision": decision,
        "keel.rule": str(call.get("rule", "")),
        "keel.resource": str(call.get("resource", "")),
    }


def node_summary(node: str, state: Mapping[str, Any], update: Mapping[str, Any]) -> StepSummary:
    """The decisions of one step of `node` (only what the step itself changed)."""
    attrs: dict[str, Any] = {}
    events: list[dict[str, Any]] = []
    before = {c.get("id"): c for c in state.get("pending", [])}
    after = update.get("pending", [])
    if node == "recall":
        attrs["keel.recalled"] = len(update.get("recalled", []))
    elif node == "plan":
        attrs["keel.planned"] = bool(update.get("plan"))
    elif node == "decide":
        attrs["keel.step"] = int(update.get("steps", 0))
        attrs["keel.tool_calls"] = [str(c.get("name")) for c in after]
        # a turn whose every call the matrix allowed was decided here (it goes straight to tool)
        events = [_event(c, "allow", "permission") for c in after if c.get("status") == "allowed"]
        if events:
            attrs["keel.decision"] = [e["keel.decision"] for e in events]
            attrs["keel.rule"] = [e["keel.rule"] for e in events]
    elif node == "permission_check":
        decided = [c for c in after if before.get(c.get("id"), {}).get("status") == "new"]
        events = [_event(c, _permission(c), "permission") for c in decided]
        attrs["keel.decision"] = [e["keel.decision"] for e in events]
        attrs["keel.rule"] = [e["keel.rule"] for e in events]
    elif node == "approval":
        for c in after:
            if before.get(c.get("id"), {}).get("status") != "ask" or c.get("status") == "ask":
                continue
            if c.get("status") == "allowed":
                edited = c.get("args") != before[c.get("id")].get("args")
                decision = "edit" if edited else "approve"
            else:
                decision = "reject"
            events.append(_event(c, decision, "approval"))
            attrs["keel.decision"] = decision
            attrs["keel.rule"] = str(c.get("rule", ""))
            if c.get("approved_by"):
                attrs["keel.approved_by"] = str(c["approved_by"])
    elif node == "tool":
        ran = [c for c in before.values() if c.get("status") == "allowed"]
        attrs["keel.tools"] = [str(c.get("name")) for c in ran]
    elif node in ("fallback", "finalize"):
        reason = update.get("terminated_reason", state.get("terminated_reason"))
        if reason:
            attrs["keel.terminated_reason"] = str(reason)
        if node == "finalize":
            attrs["keel.status"] = str(update.get("status", ""))
            attrs["keel.cost_usd"] = float(state.get("run_cost", 0.0))
    if "terminated_reason" in update and update["terminated_reason"] and node == "decide":
        attrs["keel.terminated_reason"] = str(update["terminated_reason"])
    return StepSummary(attributes=attrs, events=events)
