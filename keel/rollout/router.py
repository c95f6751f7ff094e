"""A rollout in force in one process: which arm a user's run starts in, what operators change, and the guard
rails that stop a failing arm.

Shared across replicas through the records database (`rollout_arms`, keel.records.rollouts): a weight an
operator set and an arm's stop are read from there, at most once every `refresh_s` per process (a stop
reaches every replica within that time), and written with their audit row in one transaction. The file
(weights, allow-list, stable arm, guard rails) is re-read when it changes (keel.rollout.watcher).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from keel.errors import Conflict, NotFound
from keel.records import utcnow
from keel.records.rollouts import ArmState, ArmWindow
from keel.rollout.assign import choose_arm
from keel.rollout.guard_rails import judge
from keel.rollout.spec import RolloutSpec
from keel.rollout.watcher import RolloutWatcher

__all__ = ["ArmStatus", "Rollout", "GUARD_RAIL_ACTOR"]

_log = logging.getLogger("keel.rollout")

GUARD_RAIL_ACTOR = "keel-guard-rail"
"""Who stopped an arm its guard rails stopped (the audit row's user)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ArmStatus:
    """One arm as `keel rollout status` shows it."""

    arm: str
    version: str
    config: str
    stable: bool
    file_weight: float
    weight: float
    """In force: an operator's (keel rollout set) or the file's; 0 while stopped."""
    share: float
    """The share of users (not on the allow-list) whose runs start in this arm now."""
    allowed_users: int
    stopped: bool
    stopped_at: str | None = None
    stopped_by: str | None = None
    stop_reason: str | None = None
    window: dict[str, Any] = field(default_factory=dict)
    """The guard rails' window: runs, success_rate, tool_failure_rate, cost_per_run."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "arm": self.arm,
            "version": self.version,
            "config": self.config,
            "stable": self.stable,
            "file_weight": self.file_weight,
            "weight": self.weight,
            "share": self.share,
            "allowed_users": self.allowed_users,
            "stopped": self.stopped,
            "stopped_at": self.stopped_at,
            "stopped_by": self.stopped_by,
            "stop_reason": self.stop_reason,
            "window": self.window,
        }


class Rollout:
    """The rollout of one process over the records database. `versions`: arm name -> the agent version id
    its config runs (built at start)."""

    def __init__(
        self,
        spec: RolloutSpec,
        records: Any,
        versions: Mapping[str, str],
        *,
        name: str,
        refresh_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        """The rollout's name in the shared state (rollout.yaml's `name`, else the stable config's agent)."""
        self._watcher = RolloutWatcher(spec)
        self._records = records
        self.versions = dict(versions)
        self._refresh_s = refresh_s
        self._clock = clock
        self._state: dict[str, ArmState] = {}
        self._read_at = float("-inf")
        self._checked: dict[str, float] = {}
        self._lock = asyncio.Lock()

    # -- the file and the shared state ------------------------------------------------------------

    def spec(self) -> RolloutSpec:
        """The rollout file in force (re-read when it changed)."""
        return self._watcher.current()

    @property
    def last_error(self) -> Exception | None:
        """Why the newest edit of the file was refused (None: it is in force)."""
        return self._watcher.last_error

    async def state(self, *, fresh: bool = False) -> dict[str, ArmState]:
        """The arms' shared state, re-read when older than `refresh_s` (or `fresh`)."""
        if fresh or self._clock() - self._read_at >= self._refresh_s:
            async with self._lock:
                if fresh or self._clock() - self._read_at >= self._refresh_s:
                    self._state = await self._records.rollout_state(self.name)
                    self._read_at = self._clock()
        return self._state

    def _weights(self, spec: RolloutSpec, state: Mapping[str, ArmState]) -> dict[str, float]:
        out = {}
        for arm in spec.arms:
            changed = state.get(arm.name)
            out[arm.name] = (
                changed.weight if changed is not None and changed.weight is not None else arm.weight
            )
        return out

    # -- assignment -------------------------------------------------------------------------------

    async def choose(self, user_id: str) -> str:
        """The arm a new run of `user_id` starts in (sticky: the same while weights and stops stay)."""
        spec = self.spec()
        state = await self.state()
        return choose_arm(
            user_id,
            weights=self._weights(spec, state),
            stable=spec.stable,
            salt=spec.salt,
            allow=spec.allow,
            stopped=_stopped(spec, state),
        )

    # -- what operators change --------------------------------------------------------------------

    def _arm(self, name: str) -> None:
        spec = self.spec()
        if spec.arm(name) is None:
            raise NotFound(f"no arm {name!r} in the rollout (arms: {', '.join(spec.names)})")

    async def set_weight(self, arm: str, weight: float, *, by: str, role: str) -> ArmState:
        """Set `arm`'s weight (every process follows within `refresh_s`); audited."""
        self._arm(arm)
        row = await self._records.set_arm_weight(self.name, arm, float(weight), by=by, role=role)
        await self.state(fresh=True)
        return row

    async def stop(self, arm: str, *, by: str, role: str, reason: str) -> bool:
        """Stop `arm`: its users' new runs start in the stable arm; audited. False: it was stopped already."""
        self._arm(arm)
        if arm == self.spec().stable:
            raise Conflict(
                f"arm {arm!r} is the stable arm: it cannot be stopped (make another arm stable first)"
            )
        stopped = await self._records.stop_arm(self.name, arm, by=by, role=role, reason=reason)
        await self.state(fresh=True)
        return stopped

    async def resume(self, arm: str, *, by: str, role: str) -> bool:
        """Clear `arm`'s stop: its users return to it by weight; audited. False: it was not stopped."""
        self._arm(arm)
        resumed = await self._records.resume_arm(self.name, arm, by=by, role=role)
        self._checked.pop(arm, None)
        await self.state(fresh=True)
        return resumed

    # -- guard rails --------------------------------------------------------------------------------

    async def window(self, arm: str) -> ArmWindow:
        """`arm`'s finished runs over the guard rails' window."""
        since = utcnow() - timedelta(seconds=self.spec().guard_rails.window_s)
        return await self._records.arm_window(arm, self.versions.get(arm, ""), since)

    async def check(self, arm: str) -> str | None:
        """Judge `arm` now; when a guard rail is past its threshold, stop it (once across every process,
        with an audit row naming the figures) and return the reason. None: kept (or not judged: the stable
        arm, a stopped arm, too few runs)."""
        spec = self.spec()
        if arm == spec.stable or spec.arm(arm) is None:
            return None
        state = await self.state()
        if (s := state.get(arm)) is not None and s.stopped:
            return None
        window = await self.window(arm)
        reason = judge(window, spec.guard_rails)
        if reason is None:
            return None
        if await self._records.stop_arm(
            self.name, arm, by=GUARD_RAIL_ACTOR, role="system", reason=reason, figures=window.figures()
        ):
            _log.info("rollout arm %s stopped by its guard rails: %s", arm, reason)
        await self.state(fresh=True)
        return reason

    async def finished(self, arm: str | None) -> None:
        """A run on `arm` finished: judge the arm if this process has not for `check_every_s`. Never raises
        (a guard rail that cannot be checked now is checked after a later run)."""
        if arm is None or arm == self.spec().stable:
            return
        now = self._clock()
        if now - self._checked.get(arm, float("-inf")) < self.spec().guard_rails.check_every_s:
            return
        self._checked[arm] = now
        try:
            await self.check(arm)
        except Exception as exc:  # noqa: BLE001 - the run is recorded; the check waits for the next one
            self._checked.pop(arm, None)
            _log.error("rollout guard rails of arm %s could not be checked: %s", arm, exc)

    # -- status -------------------------------------------------------------------------------------

    async def status(self) -> list[ArmStatus]:
        """Every arm: version, weights, share, stop, and its guard rails' window."""
        spec = self.spec()
        state = await self.state(fresh=True)
        weights = self._weights(spec, state)
        stopped = _stopped(spec, state)
        # As choose_arm assigns: by the weights in force, a stopped arm's users going to the stable arm.
        total = sum(weights.values())
        shares = {name: (0.0 if name in stopped or total <= 0 else w / total) for name, w in weights.items()}
        shares[spec.stable] = (
            1.0 if total <= 0 else (weights[spec.stable] + sum(weights[n] for n in stopped)) / total
        )
        out = []
        for arm in spec.arms:
            s = state.get(arm.name)
            window = await self.window(arm.name)
            out.append(
                ArmStatus(
                    arm=arm.name,
                    version=self.versions.get(arm.name, ""),
                    config=str(arm.config),
                    stable=arm.name == spec.stable,
                    file_weight=arm.weight,
                    weight=0.0 if arm.name in stopped else weights[arm.name],
                    share=round(shares[arm.name], 6),
                    allowed_users=sum(1 for a in spec.allow.values() if a == arm.name),
                    stopped=arm.name in stopped,
                    stopped_at=s.stopped_at.isoformat() if s is not None and s.stopped_at else None,
                    stopped_by=s.stopped_by if s is not None else None,
                    stop_reason=s.stop_reason if s is not None else None,
                    window={
                        "since": window.since.isoformat(),
                        **window.figures(),
                    },
                )
            )
        return out


def _stopped(spec: RolloutSpec, state: Mapping[str, ArmState]) -> set[str]:
    """The arms stopped in the shared state (the stable arm never counts as stopped)."""
    return {name for name, s in state.items() if s.stopped and name != spec.stable}
