"""Errors a keel user sees: each carries a one-line reason."""

from __future__ import annotations

__all__ = ["KeelError", "NotFound", "Conflict", "Forbidden"]


class KeelError(Exception):
    """A request keel refuses, with a one-line reason for the user."""


class NotFound(KeelError):
    """The thread, approval or execution does not exist."""


class Conflict(KeelError):
    """The request does not fit the current state (already decided, already running, …)."""


class Forbidden(KeelError):
    """The caller's role may not do this."""
