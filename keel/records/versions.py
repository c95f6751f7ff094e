"""The agent versions (`agent_versions`): the part of `Records` that stores versions and says which ran.

- `save_version` inserts a version if absent (`ON CONFLICT (version_id) DO NOTHING`): a row is written once,
  by the first process that starts with that version, and never changed (the id is its manifest's hash).
- `version_usage` lists every version seen, in `agent_versions` or on executions (a run recorded before
  migration 0011 names a free label), with its execution count and first/last seen, newest first.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from keel.records.tables import agent_versions, executions
from keel.records.types import AgentVersionRow, VersionUsage, utcnow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["VersionStore"]


class VersionStore:
    """`Records`' agent-version methods (a base class of `Records`, which provides the connections)."""

    if TYPE_CHECKING:

        def _connect(self, *, read: bool = False) -> AbstractAsyncContextManager[AsyncConnection]: ...
        def _insert(self, table: sa.Table) -> Any: ...

    async def save_version(self, version_id: str, name: str, manifest: dict[str, Any]) -> bool:
        """Store a version unless its id is already stored; True when this call inserted it."""
        values = {"version_id": version_id, "name": name, "manifest": manifest, "created_at": utcnow()}
        stmt = (
            self._insert(agent_versions)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["version_id"])
            .execution_options(preserve_rowcount=True)  # psycopg's async cursor forgets it otherwise
        )
        async with self._connect() as conn:
            return (await conn.execute(stmt)).rowcount == 1

    async def get_version(self, version_id: str) -> AgentVersionRow | None:
        """The stored version with this id, or None."""
        async with self._connect(read=True) as conn:
            query = sa.select(agent_versions).where(agent_versions.c.version_id == version_id)
            row = (await conn.execute(query)).first()
        return None if row is None else AgentVersionRow(**row._mapping)

    async def version_usage(self) -> list[VersionUsage]:
        """Every version seen, newest (first seen) first: its name when stored, how many executions name it,
        and when it was first and last seen. One read transaction, two grouped reads."""
        used = sa.select(
            executions.c.version,
            sa.func.count().label("n"),
            sa.func.min(executions.c.started_at).label("first"),
            sa.func.max(executions.c.started_at).label("last"),
        ).group_by(executions.c.version)
        async with self._connect(read=True) as conn:
            stored = {r.version_id: r for r in (await conn.execute(sa.select(agent_versions))).all()}
            runs = {r.version: r for r in (await conn.execute(used)).all()}
        out = []
        for vid in stored.keys() | runs.keys():
            row, run = stored.get(vid), runs.get(vid)
            seen = [t for t in (row and row.created_at, run and run.first) if t is not None]
            out.append(
                VersionUsage(
                    version_id=vid,
                    name=row.name if row is not None else None,
                    executions=run.n if run is not None else 0,
                    first_seen=min(seen),
                    last_seen=run.last if run is not None else row.created_at,  # type: ignore[union-attr]
                    recorded=row is not None,
                )
            )
        return sorted(out, key=lambda u: (u.first_seen, u.version_id), reverse=True)
