"""`keel cache`: what the model-response cache and the tool result cache saved, and clearing them.

The hits come from the records database (every process writes them there, so this process sees the runs of
every other); the entries from the cache store where it is shared (Redis, postgres profile). The embedded
profile's caches live inside each running process: this command cannot see or clear them, and says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.cli._common import ConfigOpt, JsonOpt, call, new_app, out, print_json

if TYPE_CHECKING:
    from keel.settings import Settings

__all__ = ["cache_app"]

cache_app = new_app(
    "The model-response cache and the tool result cache (off unless `KEEL_CACHE_MODEL_TTL_S` / "
    "`KEEL_CACHE_TOOL_TTL_S` or keel.yaml `cache:` sets a time to live). Exit codes: 0 ok, 1 a bad config, "
    "5 the records database or Redis unavailable."
)

_IN_PROCESS = (
    "in-process (embedded profile): each running process keeps its own entries, which end with it; "
    "they cannot be counted or cleared from another process"
)
_HITS_SOURCE = "records database: executions.cached_model_calls and tool_results.cached, all processes"


def _settings(config: Path | None) -> Settings:
    from keel.config import find_config, load_config
    from keel.settings import Settings

    found = find_config(config)
    settings = Settings()
    return load_config(found).apply(settings) if found is not None else settings


def _head(settings: Settings) -> dict[str, Any]:
    from keel.hotstate.redis_cache import CACHE_NAMESPACE

    shared = settings.profile == "postgres"
    return {
        "profile": settings.profile,
        "model_cache_ttl_s": settings.cache_model_ttl_s,
        "tool_cache_ttl_s": settings.cache_tool_ttl_s,
        "store": f"redis ({settings.redis_prefix}{CACHE_NAMESPACE}*)" if shared else _IN_PROCESS,
    }


@cache_app.command("stats")
def cache_stats(config: Path | None = ConfigOpt, as_json: bool = JsonOpt) -> None:
    """Cache hits recorded by every process (from the records) and the entries in the shared store."""

    async def go() -> dict[str, Any]:
        from keel.hotstate.caches import cache_store
        from keel.records import Records
        from keel.records.cache_stats import cache_figures

        settings = _settings(config)
        records = Records.from_url(settings.records_url)
        try:
            await records.setup()
            figures = await cache_figures(records)
        finally:
            await records.close()
        entries: int | None = None
        if settings.profile == "postgres":
            store, close = cache_store(settings)
            try:
                entries = await store.count()
            finally:
                await close()
        return {**_head(settings), "entries": entries, "hits_source": _HITS_SOURCE, **figures.as_dict()}

    report = call(go)
    if as_json:
        print_json(out, report)
        return
    on = lambda ttl: f"on, {ttl:g} s" if ttl else "off"  # noqa: E731
    entries = report["entries"]
    lines = [
        f"model cache: {on(report['model_cache_ttl_s'])}; tool cache: {on(report['tool_cache_ttl_s'])}",
        f"store: {report['store']}",
        f"entries: {entries if entries is not None else 'not visible from this process'}",
        f"cached model calls: {report['cached_model_calls']} "
        f"(in {report['executions_with_cached_calls']} executions)",
        f"cached tool results: {report['cached_tool_results']}",
        f"hits counted from the {report['hits_source']}",
    ]
    for line in lines:
        out.print(line, highlight=False, markup=False)


@cache_app.command("clear")
def cache_clear(config: Path | None = ConfigOpt, as_json: bool = JsonOpt) -> None:
    """Remove this deployment's cache entries (its `redis_prefix` only; other Redis data is never touched)."""

    async def go() -> dict[str, Any]:
        from keel.hotstate.caches import cache_store

        settings = _settings(config)
        if settings.profile != "postgres":
            return {**_head(settings), "cleared": False, "removed": 0}
        store, close = cache_store(settings)
        try:
            removed = await store.clear()
        finally:
            await close()
        return {**_head(settings), "cleared": True, "removed": removed}

    report = call(go)
    if as_json:
        print_json(out, report)
        return
    if report["cleared"]:
        out.print(f"removed {report['removed']} cache entries from {report['store']}", markup=False)
    else:
        out.print(f"nothing cleared: the store is {report['store']}", markup=False)
