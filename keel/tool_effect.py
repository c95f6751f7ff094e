"""What a tool's call does to the world, which decides what keel does with it after a crash.

- `read`: changes nothing; a recorded result is replayed on resume.
- `idempotent`: may run again after a crash (running it twice is the same as once).
- `external`: a side effect elsewhere; gets the tool call id as an idempotency key to pass on.
- `transactional`: a records write, committed in one transaction with its tool_results row.
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["ToolEffect", "TOOL_EFFECTS", "IDEMPOTENCY_KEY_ARG"]

ToolEffect = Literal["read", "idempotent", "external", "transactional"]
TOOL_EFFECTS: tuple[str, ...] = get_args(ToolEffect)

IDEMPOTENCY_KEY_ARG = "idempotency_key"
"""The argument keel fills for an `external` tool that declares it (a tool from Python or an MCP server):
hidden from the model, set to the call's idempotency key (keel.tools.spec.ToolContext.idempotency_key)."""
