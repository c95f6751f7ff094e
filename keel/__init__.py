"""keel: a production runtime for tool-using LLM agents, built on LangGraph.

The names below load lazily, so that importing one small module (`keel.redaction`, say) does not
import the whole graph.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Keel",
    "RunOutcome",
    "RunContext",
    "Settings",
    "KeelError",
    "NotFound",
    "Conflict",
    "Forbidden",
    "create_guarded_agent",
    "guarded_tool",
]

_HOME = {
    "Keel": "keel.app.service",
    "RunOutcome": "keel.app.service",
    "RunContext": "keel.context",
    "Settings": "keel.settings",
    "KeelError": "keel.errors",
    "NotFound": "keel.errors",
    "Conflict": "keel.errors",
    "Forbidden": "keel.errors",
    "create_guarded_agent": "keel.app.factory",
    "guarded_tool": "keel.app.factory",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module 'keel' has no attribute {name!r}")
