"""Rollout reload without restart: weights, allow-list, stable arm and guard rails follow the file; a bad
edit changes nothing.

The arms themselves (their names and the configs they run) are built into the process at start: an edit
that adds, removes or re-points an arm is refused like an invalid one (logged once, the rollout in force
stays) until the process restarts.
"""

from __future__ import annotations

import logging

from keel.policies.watcher import file_signature
from keel.rollout.spec import RolloutError, RolloutSpec, load_rollout

__all__ = ["RolloutWatcher"]

_log = logging.getLogger("keel.rollout")


class RolloutWatcher:
    """Holds the rollout in force; `current()` costs one `stat` and re-reads a changed file."""

    def __init__(self, spec: RolloutSpec) -> None:
        self._spec = spec
        self._seen = file_signature(spec.path)
        self.last_error: RolloutError | None = None

    def current(self) -> RolloutSpec:
        sig = file_signature(self._spec.path)
        if sig is None or sig == self._seen:
            return self._spec
        self._seen = sig
        assert self._spec.path is not None
        try:
            fresh = load_rollout(self._spec.path)
            arms = {(a.name, a.config) for a in self._spec.arms}
            if {(a.name, a.config) for a in fresh.arms} != arms:
                raise RolloutError(
                    str(self._spec.path), 0, "the arms or their configs changed: that takes a restart"
                )
        except RolloutError as exc:
            self.last_error = exc
            _log.error("rollout file changed but is refused; the rollout in force stays: %s", exc)
            return self._spec
        self.last_error = None
        if fresh != self._spec:
            _log.warning("rollout reloaded from %s", self._spec.path)
        self._spec = fresh
        return fresh
