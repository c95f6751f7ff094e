"""Text that every store accepts: NUL and lone surrogates replaced, visibly, before anything is stored.

PostgreSQL `text` and `jsonb` refuse NUL (`\\x00`), and a lone surrogate cannot be encoded as UTF-8 for
either database; AsyncPostgresSaver inlines plain-string state channels into jsonb. A workspace file, a
tool's output, a model's plan or answer and a user's task may hold either, so text is made safe where it
enters state or records, the same way on both storage profiles. The replacement is U+FFFD, so a reader
sees that something was there instead of losing it silently.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["REPLACEMENT", "safe_text", "safe_value"]

REPLACEMENT = "\ufffd"
_UNSAFE = re.compile("[\x00\ud800-\udfff]")


def safe_text(text: str) -> str:
    """`text` with NUL and lone surrogates replaced by U+FFFD (unchanged, same object, when clean)."""
    return _UNSAFE.sub(REPLACEMENT, text) if _UNSAFE.search(text) else text


def safe_value(value: Any) -> Any:
    """`safe_text` applied to every string inside `value` (dict keys, lists, tuples too)."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, dict):
        return {safe_value(k): safe_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(safe_value(v) for v in value)
    return value
