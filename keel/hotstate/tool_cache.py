"""The tool result cache: a `read` tool's result, per (tenant, user, agent version, tool, arguments).

Scoped per user because a read tool's result may be the user's own (a file in their home). Only the
executor decides what may be cached (keel.tools.executor: effect `read`, never a side effect); this module
just keeps what it is given. A store outage is a miss (the tool runs).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from keel.hotstate.cache_store import CacheStore
from keel.hotstate.types import HotStateUnavailable

__all__ = ["ToolResultCache", "CachedResult"]

_log = logging.getLogger(__name__)
_KIND = "tool:"


@dataclass(frozen=True, slots=True, kw_only=True)
class CachedResult:
    """A tool's recorded output (as the model saw it) and the digest of its raw result."""

    output: str
    result_digest: str | None = None


class ToolResultCache:
    """Tool results kept `ttl_s` seconds each."""

    def __init__(self, store: CacheStore, *, ttl_s: float) -> None:
        self.store = store
        self.ttl_s = ttl_s

    @staticmethod
    def key(*, tenant: str, user_id: str, version: str, tool: str, args: Any) -> str:
        blob = json.dumps(
            [tenant, user_id, version, tool, args],
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            default=str,
        )
        return _KIND + hashlib.sha256(blob.encode()).hexdigest()

    async def lookup(self, key: str) -> CachedResult | None:
        try:
            raw = await self.store.get(key)
        except HotStateUnavailable as exc:
            _log.warning("tool cache lookup failed (the tool runs): %s", exc)
            return None
        return CachedResult(**json.loads(raw)) if raw is not None else None

    async def remember(self, key: str, result: CachedResult) -> None:
        value = json.dumps({"output": result.output, "result_digest": result.result_digest})
        try:
            await self.store.set(key, value, self.ttl_s)
        except HotStateUnavailable as exc:
            _log.warning("tool cache update failed (result not cached): %s", exc)
