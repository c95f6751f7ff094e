"""The identifier rule: user, tenant, role, execution, thread and approval ids everywhere keel takes one.

1-128 letters, digits or ``_.@-``, starting with a letter or digit: no wildcard, ``$``, quote, space, path
separator or empty id gets through, so an id is safe in a filter, a path, a log line and a URL.
"""

from __future__ import annotations

import re

__all__ = ["ID_PATTERN", "ID_RULE", "is_id"]

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$"
"""The rule as a regular expression (also the OpenAPI `pattern` of every id parameter)."""
ID_RULE = "1-128 letters, digits or '_.@-', starting with a letter or digit"
"""The rule in words, for error messages."""

_ID = re.compile(ID_PATTERN)


def is_id(value: object) -> bool:
    """Whether `value` is a string that follows the identifier rule (whole: `match` would let `$` accept a
    trailing newline)."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None
