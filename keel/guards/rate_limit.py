"""Rate limit: a tool's calls fit in its moving windows (per tool, per user) from policies/limits.yaml.

Its windows are counted in the tool call's one admission step, together with the tool's breaker (one
Redis round trip for all of them: keel/hotstate/admission.py); `hits` says which windows a call counts
in, `check` reads the admission's answer."""

from __future__ import annotations

from dataclasses import dataclass

from keel.context import RunContext
from keel.guards.errors import RateLimited
from keel.guards.tool_breaker import AdmittedCall
from keel.hotstate import LimitsPolicy, RateHit

__all__ = ["RateLimit"]


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Refuses a call over one of its tool's windows and tells the model when it may retry."""

    limits: LimitsPolicy
    reason: str = "rate_limited"

    def hits(self, tool: str, run: RunContext) -> list[RateHit]:
        """The windows one call of `tool` by `run`'s user counts in."""
        limits = self.limits.for_tool(tool)
        if limits is None:
            return []
        hits = []
        if limits.per_tool is not None:
            hits.append(RateHit(scope="per_tool", item=limits.per_tool, key=("tool", tool)))
        if limits.per_user is not None:
            hits.append(RateHit(scope="per_user", item=limits.per_user, key=("user", run.user_id, tool)))
        return hits

    async def check(self, call: AdmittedCall) -> str | None:
        admission = call.admission
        if admission.limited_by is not None:
            return str(RateLimited(call.tool, admission.limited_by, admission.retry_after_s))
        return None
