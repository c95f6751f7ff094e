"""Gradual rollouts: agent versions side by side in weighted arms, sticky per user, stopped by guard rails.

- spec.py: `rollout.yaml` (arms, weights, allow-list, guard rails), validated at a line.
- assign.py: which arm a user is in (weighted rendezvous hashing).
- watcher.py: the file reloaded when it changes.
- guard_rails.py: the verdict on an arm's window of runs.
- router.py: `Rollout`, the rollout in force in one process, over the records database.
"""

from keel.rollout.spec import ROLLOUT_FILE, Arm, GuardRails, RolloutError, RolloutSpec, load_rollout

__all__ = ["ROLLOUT_FILE", "Arm", "GuardRails", "RolloutError", "RolloutSpec", "load_rollout"]
