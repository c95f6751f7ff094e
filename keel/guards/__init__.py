"""Guards that hold across replicas: budgets, breakers and rate limits around model and tool calls."""

from keel.guards.build import build_guards
from keel.guards.errors import (
    CircuitOpen,
    GuardFailure,
    GuardUnavailable,
    RateLimited,
    ToolGuardRefused,
    failure_of,
)
from keel.guards.model import ModelGate
from keel.guards.run import Guards
from keel.guards.tool import ToolGate, ToolGuard

__all__ = [
    "CircuitOpen",
    "GuardFailure",
    "GuardUnavailable",
    "Guards",
    "ModelGate",
    "RateLimited",
    "ToolGate",
    "ToolGuard",
    "ToolGuardRefused",
    "build_guards",
    "failure_of",
]
