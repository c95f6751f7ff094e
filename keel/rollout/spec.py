"""`rollout.yaml`: which agent versions run side by side, for whom, and when one is stopped.

```yaml
version: 1
name: desk                # optional: the rollout's name in the shared state (default: the agent's name)
stable: a                 # the arm every user returns to when another arm stops
arms:
  a: {config: keel.yaml, weight: 90}
  b: {config: keel.b.yaml, weight: 10}
allow:                    # users always in an arm, whatever the weights (an allow-list for a canary)
  b: [alice]
guard_rails:              # checked over the last `window` of each non-stable arm's finished runs
  window: 1h
  min_runs: 20            # fewer finished runs than this: no verdict yet
  min_success_rate: 0.8
  max_tool_failure_rate: 0.2
  max_cost_per_run_usd: 0.05
  check_every_s: 30       # a process checks an arm at most this often (after a run on it ends)
```

Read through keel.yamlfile, so a problem is ``FILE:LINE: reason``; `config` paths are relative to this
file. Arm names follow the id rule. Validated whole on load; the watcher (keel.rollout.watcher) keeps the
previous rollout in force when an edit is invalid, as the policy watcher does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from keel.ids import ID_RULE, is_id
from keel.observability.health import parse_window
from keel.yamlfile import YamlDoc, YamlFileError

__all__ = ["Arm", "GuardRails", "RolloutError", "RolloutSpec", "ROLLOUT_FILE", "load_rollout"]

ROLLOUT_FILE = "rollout.yaml"
_KIND = "rollout file"
_TOP = ("version", "name", "stable", "arms", "allow", "guard_rails", "salt")
_ARM = ("config", "weight")
_RAILS = (
    "window",
    "min_runs",
    "min_success_rate",
    "max_tool_failure_rate",
    "max_cost_per_run_usd",
    "check_every_s",
)
DEFAULT_SALT = "keel-rollout"
"""What a user's hash is salted with unless the file says otherwise (a new salt reshuffles everyone)."""


class RolloutError(YamlFileError):
    """The rollout file is unreadable or invalid: ``<file>:<line>: <reason>``."""


@dataclass(frozen=True, slots=True)
class Arm:
    """One arm: its name, the keel.yaml of the version it runs (absolute), and its weight in the file."""

    name: str
    config: Path
    weight: float


@dataclass(frozen=True, slots=True, kw_only=True)
class GuardRails:
    """When a non-stable arm is stopped automatically (a None threshold is not checked)."""

    window_s: float = 3600.0
    min_runs: int = 20
    min_success_rate: float | None = None
    max_tool_failure_rate: float | None = None
    max_cost_per_run_usd: float | None = None
    check_every_s: float = 30.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "window_s": self.window_s,
            "min_runs": self.min_runs,
            "min_success_rate": self.min_success_rate,
            "max_tool_failure_rate": self.max_tool_failure_rate,
            "max_cost_per_run_usd": self.max_cost_per_run_usd,
            "check_every_s": self.check_every_s,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class RolloutSpec:
    """A validated rollout file."""

    stable: str
    arms: tuple[Arm, ...]
    allow: dict[str, str] = field(default_factory=dict)
    """user id -> the arm that user is always in."""
    guard_rails: GuardRails = field(default_factory=GuardRails)
    salt: str = DEFAULT_SALT
    name: str | None = None
    """The rollout's name in the records database (None: the agent name of the config keel runs)."""
    path: Path | None = None

    def arm(self, name: str) -> Arm | None:
        return next((a for a in self.arms if a.name == name), None)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.arms)


def load_rollout(path: str | Path) -> RolloutSpec:
    """Read and validate a rollout file (RolloutError at the offending line)."""
    path = Path(path).resolve()
    doc = YamlDoc.load(path, error=RolloutError, kind=_KIND)
    return _Parser(doc, path).spec()


class _Parser:
    def __init__(self, doc: YamlDoc, path: Path) -> None:
        self.doc, self.path = doc, path

    def spec(self) -> RolloutSpec:
        doc = self.doc
        top = doc.top(_TOP, name="rollout", expects="'version', 'stable' and 'arms'")
        doc.version(top)
        for key in ("stable", "arms"):
            if key not in top:
                raise doc.fail(1, f"missing {key!r}")
        arms = tuple(self.arm(name, node) for name, node in doc.mapping(top["arms"], "arms").items())
        if len(arms) < 2:
            raise doc.fail(top["arms"], "arms: a rollout needs at least two arms")
        names = {a.name for a in arms}
        stable = doc.value(top["stable"])
        if stable not in names:
            raise doc.fail(
                top["stable"], f"stable: {stable!r} is not one of the arms ({', '.join(sorted(names))})"
            )
        if not any(a.weight > 0 for a in arms):
            raise doc.fail(top["arms"], "arms: at least one arm needs a weight above 0")
        allow = self.allow(top["allow"], names) if "allow" in top else {}
        rails = self.rails(top["guard_rails"]) if "guard_rails" in top else GuardRails()
        salt = DEFAULT_SALT
        if "salt" in top:
            salt = doc.value(top["salt"])
            if not isinstance(salt, str) or not salt:
                raise doc.fail(top["salt"], "salt must be a non-empty string")
        name = None
        if "name" in top:
            name = doc.value(top["name"])
            if not is_id(name):
                raise doc.fail(top["name"], f"name: {name!r} is not an id ({ID_RULE})")
        return RolloutSpec(
            stable=stable, arms=arms, allow=allow, guard_rails=rails, salt=salt, name=name, path=self.path
        )

    def arm(self, name: str, node: yaml.Node) -> Arm:
        doc = self.doc
        if not is_id(name) or len(name) > 64:
            raise doc.fail(
                node, f"arm {name!r}: an arm name must be an id ({ID_RULE}) of at most 64 characters"
            )
        entries = doc.mapping(node, f"arm {name}", _ARM)
        if "config" not in entries:
            raise doc.fail(node, f"arm {name}: missing 'config' (the keel.yaml of the version it runs)")
        raw = doc.value(entries["config"])
        if not isinstance(raw, str) or not raw:
            raise doc.fail(entries["config"], f"arm {name}: config must be a path")
        config = (self.path.parent / raw).resolve()
        if not config.is_file():
            raise doc.fail(
                entries["config"], f"arm {name}: config {raw!r} is not a file (looked at {config})"
            )
        weight = doc.value(entries["weight"]) if "weight" in entries else 0
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not math.isfinite(weight)
            or weight < 0
        ):
            raise doc.fail(entries.get("weight", node), f"arm {name}: weight must be a number >= 0")
        return Arm(name=name, config=config, weight=float(weight))

    def allow(self, node: yaml.Node, names: set[str]) -> dict[str, str]:
        doc = self.doc
        out: dict[str, str] = {}
        for arm, users in doc.mapping(node, "allow", null_ok=True).items():
            if arm not in names:
                raise doc.fail(users, f"allow: {arm!r} is not one of the arms ({', '.join(sorted(names))})")
            for item in doc.sequence(users, f"allow.{arm}"):
                user = doc.value(item)
                if not is_id(user):
                    raise doc.fail(item, f"allow.{arm}: {user!r} is not a user id ({ID_RULE})")
                if user in out and out[user] != arm:
                    raise doc.fail(item, f"allow.{arm}: {user!r} is already allowed in arm {out[user]!r}")
                out[user] = arm
        return out

    def rails(self, node: yaml.Node) -> GuardRails:
        doc = self.doc
        entries = doc.mapping(node, "guard_rails", _RAILS, null_ok=True)
        values: dict[str, Any] = {}
        if "window" in entries:
            try:
                values["window_s"] = parse_window(str(doc.value(entries["window"]))).total_seconds()
            except ValueError as exc:
                raise doc.fail(entries["window"], f"guard_rails.window: {exc}") from None
        if "min_runs" in entries:
            n = doc.value(entries["min_runs"])
            if type(n) is not int or n < 1:
                raise doc.fail(entries["min_runs"], "guard_rails.min_runs must be an integer >= 1")
            values["min_runs"] = n
        for key in ("min_success_rate", "max_tool_failure_rate"):
            if key in entries:
                values[key] = self.number(entries[key], key, low=0.0, high=1.0)
        if "max_cost_per_run_usd" in entries:
            values["max_cost_per_run_usd"] = self.number(
                entries["max_cost_per_run_usd"], "max_cost_per_run_usd"
            )
        if "check_every_s" in entries:
            values["check_every_s"] = self.number(entries["check_every_s"], "check_every_s")
        return GuardRails(**values)

    def number(self, node: yaml.Node, key: str, *, low: float = 0.0, high: float = math.inf) -> float:
        value = self.doc.value(node)
        if isinstance(value, bool) or not isinstance(value, int | float) or not (low <= value <= high):
            bound = f"between {low:g} and {high:g}" if math.isfinite(high) else f">= {low:g}"
            raise self.doc.fail(node, f"guard_rails.{key} must be a number {bound}")
        return float(value)
