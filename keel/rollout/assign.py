"""Which arm a user runs in: weighted rendezvous hashing, so a user stays in their arm and a weight change
moves only the users it must.

Each arm scores a user `-ln(u) / weight`, `u` uniform in (0, 1) from sha256(salt, arm, user); the lowest
score wins. The winner is arm *i* with probability `weight_i / sum(weights)`, and a user's scores do not
depend on the other arms' weights: raising arm b's weight moves users into b only, from every other arm in
proportion; lowering it moves b's users out only. (Cumulative ranges over a hash would move users between
arms whose weights did not change.) An allow-listed user is always in their arm; a user whose arm is
stopped is in the stable arm.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection, Mapping

__all__ = ["choose_arm", "rendezvous"]

_SCALE = float(1 << 64)


def _uniform(salt: str, arm: str, user_id: str) -> float:
    """A number in (0, 1) fixed by (salt, arm, user)."""
    digest = hashlib.sha256(f"{salt}\x00{arm}\x00{user_id}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") + 0.5) / _SCALE


def rendezvous(user_id: str, weights: Mapping[str, float], salt: str) -> str | None:
    """The arm `user_id` falls in by weight (None when no arm has a weight above 0)."""
    best, best_score = None, math.inf
    for arm in sorted(weights):  # sorted: ties (never in practice) break the same way everywhere
        weight = weights[arm]
        if weight <= 0:
            continue
        score = -math.log(_uniform(salt, arm, user_id)) / weight
        if score < best_score:
            best, best_score = arm, score
    return best


def choose_arm(
    user_id: str,
    *,
    weights: Mapping[str, float],
    stable: str,
    salt: str,
    allow: Mapping[str, str] | None = None,
    stopped: Collection[str] = (),
) -> str:
    """The arm a run of `user_id` starts in: the allow-list's, else by weight; the stable arm when that arm
    is stopped (or no arm has weight)."""
    arm = (allow or {}).get(user_id) or rendezvous(user_id, weights, salt)
    return stable if arm is None or arm in stopped else arm
