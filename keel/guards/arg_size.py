"""Argument size: a tool call's arguments, as JSON, fit in `max_bytes` (checked before the schema)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from keel.guards.guard import ProposedCall

__all__ = ["ArgumentSize"]


@dataclass(frozen=True, slots=True)
class ArgumentSize:
    """Refuses a call whose arguments are larger than `max_bytes`."""

    max_bytes: int
    reason: str = "too_large"

    async def check(self, call: ProposedCall) -> str | None:
        size = len(json.dumps(call.args, default=str).encode())
        if size > self.max_bytes:
            return f"arguments for {call.name} are {size} bytes; the limit is {self.max_bytes}"
        return None
