"""How one tool call ended: the structured status every reader uses (breakers, metrics, spans, records).

Readers match these values, never the text of the message the model is told."""

from __future__ import annotations

from typing import Literal

__all__ = ["ToolStatus", "TOOL_STATUSES", "TOOL_FAILURES"]

ToolStatus = Literal["ok", "refused", "invalid", "timeout", "failed", "replayed"]
"""ok: ran and answered. refused: a guard stopped it before it ran (rate limit, open breaker, budget, a
guard's store down). invalid: its arguments could not be acted on (unknown tool, schema, a path outside
the workspace): the model's mistake. timeout: ran past its time and was cancelled. failed: ran and
raised. replayed: done before (a resumed run); its recorded answer is returned, nothing runs again."""

TOOL_STATUSES: tuple[ToolStatus, ...] = ("ok", "refused", "invalid", "timeout", "failed", "replayed")

TOOL_FAILURES: frozenset[ToolStatus] = frozenset({"failed", "timeout"})
"""The statuses that are the tool's own failure (it ran and broke, or hung): they count against its
circuit breaker, in the execution record's tools_failed (the health summary's failure rate), as error
spans and in the failure metric. refused and invalid calls say nothing of the tool's health (a guard or
the model stopped them); a replayed call was counted when it ran."""
