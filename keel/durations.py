"""Durations as people write them in files and flags: `90s`, `30m`, `1h`, `7d`, `2w`, or a bare number of
seconds."""

from __future__ import annotations

import re

__all__ = ["DURATION_RULE", "parse_duration"]

DURATION_RULE = "a number of seconds or a number followed by s, m, h, d or w (e.g. 30m, 7d)"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")


def parse_duration(value: object) -> float:
    """Seconds in `value` (> 0); ValueError naming the rule otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration ({DURATION_RULE})")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        found = _DURATION.match(str(value))
        if found is None:
            raise ValueError(f"{value!r} is not a duration ({DURATION_RULE})")
        seconds = float(found.group(1)) * _UNITS[found.group(2) or "s"]
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"{value!r} is not a duration ({DURATION_RULE}; more than zero)")
    return seconds
