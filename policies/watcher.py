"""Policy reload without restart: the matrix in force follows its file, and a bad edit changes nothing.

`PolicySource` is the one accessor of the policy in force: every reader (the permission check, the approval
node, the role check of a run, the approver check of a decision, the server's key file) asks it with
`current()`, so none of them can hold a matrix older than another's.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Protocol

from keel.policies.matrix import PolicyError, PolicyMatrix

__all__ = ["PolicySource", "PolicyWatcher", "file_signature"]

_log = logging.getLogger("keel.policy")

_Signature = tuple[int, int, int] | None


def file_signature(path: Path | None) -> _Signature:
    """What identifies a version of the file, from one ``stat`` (None: there is no file to watch)."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class PolicySource(Protocol):
    """Where the policy in force is read: `current()` is the matrix every decision uses."""

    def current(self) -> PolicyMatrix: ...


class PolicyWatcher:
    """Holds the matrix in force and re-reads its file when the file changes.

    ``current()`` costs one ``stat``. A changed file is loaded and validated; if it is invalid (or
    unreadable) the error is logged once per version of the file and the previous matrix stays in force.
    """

    def __init__(self, matrix: PolicyMatrix) -> None:
        self._matrix = matrix
        self._seen = file_signature(matrix.path)
        self.last_error: PolicyError | None = None
        """The error of the newest file version, when it was refused."""

    @property
    def matrix(self) -> PolicyMatrix:
        """The matrix in force, without looking at the file."""
        return self._matrix

    def current(self) -> PolicyMatrix:
        """The matrix in force, re-read first when its file changed since the last look."""
        sig = file_signature(self._matrix.path)
        if sig is None or sig == self._seen:
            return self._matrix
        self._seen = sig
        try:
            fresh = self._matrix.reload()
        except PolicyError as exc:
            self.last_error = exc
            _log.error("policy file changed but is invalid; the previous policy stays in force: %s", exc)
            return self._matrix
        self.last_error = None
        if fresh != self._matrix:
            _log.warning("policy reloaded from %s (%d rules)", fresh.source, len(fresh.rules))
        self._matrix = fresh
        return fresh

    def replace(self, matrix: PolicyMatrix) -> None:
        """Put ``matrix`` in force (after an explicit reload) and watch its file from now on."""
        self._matrix, self._seen, self.last_error = matrix, file_signature(matrix.path), None
