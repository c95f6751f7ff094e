"""The arms of a rollout as backends: one per arm's config, sharing the process's records, memory and
telemetry, so that a process runs every version the rollout names and a user's run goes to their arm."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from keel.config import KeelConfig, load_config
from keel.rollout.router import Rollout
from keel.rollout.spec import ROLLOUT_FILE, RolloutSpec, load_rollout
from keel.settings import Settings

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from keel.app.backends import Backends

__all__ = ["attach_rollout", "find_rollout"]


def find_rollout(settings: Settings, config: KeelConfig | None) -> RolloutSpec | None:
    """The rollout to run: `settings.rollout_file` (which must exist), else `rollout.yaml` beside the
    config when there is one; None: no rollout. RolloutError (FILE:LINE) when it is invalid."""
    path = settings.rollout_file
    if path is None and config is not None and (config.path.parent / ROLLOUT_FILE).is_file():
        path = config.path.parent / ROLLOUT_FILE
    return load_rollout(path) if path is not None else None


def attach_rollout(primary: Backends, spec: RolloutSpec, *, models: Mapping[str, BaseChatModel]) -> Rollout:
    """Build each arm's backends under `primary` (the arm whose config is primary's own reuses it), and the
    `Rollout` they share; set both on `primary` (`arms`, `rollout`) and on every arm."""
    arms: dict[str, Backends] = {}
    own = primary.config.path.resolve() if primary.config is not None else None
    for arm in spec.arms:
        if own is not None and arm.config == own and primary.arm is None:
            primary.arm = arm.name
            arms[arm.name] = primary
            continue
        arms[arm.name] = type(primary).from_settings(
            primary.base_settings,
            config=load_config(arm.config),
            model=models.get(arm.name),
            parent=primary,
            arm=arm.name,
        )
    rollout = Rollout(
        spec,
        primary.records,
        {name: b.version.id for name, b in arms.items()},
        name=spec.name or (primary.config.agent.name if primary.config is not None else "keel"),
        refresh_s=primary.settings.rollout_refresh_s,
    )
    primary.arms, primary.rollout = arms, rollout
    for b in arms.values():
        b.rollout = rollout
    return rollout
