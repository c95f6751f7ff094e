"""`keel memory`: a user's long-term memories: list, search, forget (right to erasure)."""

from __future__ import annotations

from typing import Any

import typer

from keel.cli._common import JsonOpt, call, new_app, out, print_json, show
from keel.render import Grid

__all__ = ["memory_app"]

memory_app = new_app("Long-term memory of a user (Chroma).")
UserOpt = typer.Option(..., "--user", help="The user whose memories these are.")
TenantOpt = typer.Option("default", "--tenant", help="The user's tenant.")


def _open(user: str, tenant: str) -> tuple[Any, Any]:
    from keel.memory.long_term import LongTermMemory
    from keel.memory.types import MemoryScope
    from keel.settings import Settings

    scope = MemoryScope(user_id=user, tenant=tenant)  # a bad id fails here, before anything opens
    return LongTermMemory.from_settings(Settings()), scope


def _show(memory: Any, rows: list[Any], as_json: bool, title: str) -> None:
    if as_json:
        print_json(out, {"embedder": memory.embedder.label, "memories": [m.as_dict() for m in rows]})
        return
    distance = bool(rows) and rows[0].distance is not None
    columns = ("id", "kind", "text", *(["distance"] if distance else []))
    cells = [(m.memory_id, m.kind, m.text, *([f"{m.distance:.3f}"] if distance else [])) for m in rows]
    show(out, Grid(f"{title} (embeddings: {memory.embedder.label})", columns, cells, whole=frozenset({"id"})))


@memory_app.command("list")
def memory_list(
    user: str = UserOpt,
    tenant: str = TenantOpt,
    limit: int = typer.Option(50, "--limit", min=1, max=10_000),
    as_json: bool = JsonOpt,
) -> None:
    """The user's memories, newest first."""

    async def go() -> tuple[Any, list[Any], int]:
        memory, scope = _open(user, tenant)
        return memory, await memory.list(scope, limit), await memory.count(scope)

    memory, rows, total = call(go)
    _show(memory, rows, as_json, f"{user}@{tenant}: {len(rows)} of {total} memories")


@memory_app.command("search")
def memory_search(
    query: str = typer.Argument(..., help="What to look for."),
    user: str = UserOpt,
    tenant: str = TenantOpt,
    k: int = typer.Option(5, "-k", min=1, max=100),
    as_json: bool = JsonOpt,
) -> None:
    """The user's memories most similar to QUERY, closest first."""

    async def go() -> tuple[Any, list[Any]]:
        memory, scope = _open(user, tenant)
        return memory, await memory.search(scope, query, k)

    memory, rows = call(go)
    _show(memory, rows, as_json, f"{user}@{tenant}: closest to {query!r}")


@memory_app.command("forget")
def memory_forget(user: str = UserOpt, tenant: str = TenantOpt, as_json: bool = JsonOpt) -> None:
    """Delete every memory of the user (right to erasure)."""

    async def go() -> int:
        memory, scope = _open(user, tenant)
        return await memory.forget(scope)

    deleted = call(go)
    if as_json:
        print_json(out, {"user_id": user, "tenant": tenant, "deleted": deleted})
    else:
        out.print(f"forgot {deleted} memories of {user}@{tenant}")


@memory_app.command("stats")
def memory_stats(as_json: bool = JsonOpt) -> None:
    """Where memories live, which embedding model, and how many there are."""

    async def go() -> dict[str, Any]:
        from keel.memory.long_term import LongTermMemory
        from keel.settings import Settings

        memory = LongTermMemory.from_settings(Settings())
        return {"store": memory.where, "embedder": memory.embedder.label, "memories": await memory.count()}

    stats = call(go)
    if as_json:
        print_json(out, stats)
    else:
        out.print(f"{stats['memories']} memories in {stats['store']} (embeddings: {stats['embedder']})")
