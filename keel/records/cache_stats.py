"""What the caches saved, counted from the records (every process writes them, so every process sees them):
model answers served from the response cache (`executions.cached_model_calls`) and `read` tool results
served from the tool result cache (`tool_results.cached`), since a time or ever."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from keel.records.tables import executions, tool_results

if TYPE_CHECKING:
    from keel.records.store import Records

__all__ = ["CacheFigures", "cache_figures"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheFigures:
    """Cache hits recorded in the records database."""

    cached_model_calls: int
    """Model answers taken from the response cache (no call, no cost)."""
    executions_with_cached_calls: int
    """Executions that took at least one."""
    cached_tool_results: int
    """Tool results taken from the tool result cache (the tool did not run, nothing charged)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def cache_figures(records: Records, *, since: datetime | None = None) -> CacheFigures:
    """The cache hits recorded since `since` (executions by start, tool results by time), else ever."""
    ex = sa.select(
        sa.func.coalesce(sa.func.sum(executions.c.cached_model_calls), 0),
        sa.func.count().filter(executions.c.cached_model_calls > 0),
    )
    tools = sa.select(sa.func.count()).select_from(tool_results).where(tool_results.c.cached.is_(True))
    if since is not None:
        ex = ex.where(executions.c.started_at >= since)
        tools = tools.where(tool_results.c.created_at >= since)
    async with records.transaction() as conn:
        calls, with_calls = (await conn.execute(ex)).one()
        cached_tools = (await conn.execute(tools)).scalar_one()
    return CacheFigures(
        cached_model_calls=int(calls),
        executions_with_cached_calls=int(with_calls),
        cached_tool_results=int(cached_tools),
    )
