"""Guards: one class per rule (keel/guards/<rule>.py), each with the `Guard` shape, and the budgets,
breakers and rate limits behind them, which hold across replicas."""

from keel.guards.arg_size import ArgumentSize
from keel.guards.budget import Budget
from keel.guards.build import build_guards, call_guards, state_guards
from keel.guards.deadline import Deadline
from keel.guards.errors import (
    CircuitOpen,
    GuardFailure,
    GuardUnavailable,
    RateLimited,
    ToolGuardRefused,
    failure_of,
)
from keel.guards.guard import Guard, NextCall, ProposedCall
from keel.guards.model import ModelGate
from keel.guards.model_breaker import ModelBreaker
from keel.guards.none import NoGuards
from keel.guards.rate_limit import RateLimit
from keel.guards.run import Guards
from keel.guards.run_cost import RunCostCap
from keel.guards.steps import StepLimit
from keel.guards.tool import ToolGate, ToolGuard
from keel.guards.tool_breaker import AdmittedCall, ToolBreaker
from keel.guards.turn_calls import TurnCallCap

__all__ = [
    "AdmittedCall",
    "ArgumentSize",
    "Budget",
    "CircuitOpen",
    "Deadline",
    "Guard",
    "GuardFailure",
    "GuardUnavailable",
    "Guards",
    "ModelBreaker",
    "ModelGate",
    "NextCall",
    "ProposedCall",
    "NoGuards",
    "RateLimit",
    "RateLimited",
    "RunCostCap",
    "StepLimit",
    "ToolBreaker",
    "ToolGate",
    "ToolGuard",
    "ToolGuardRefused",
    "TurnCallCap",
    "build_guards",
    "call_guards",
    "failure_of",
    "state_guards",
]
