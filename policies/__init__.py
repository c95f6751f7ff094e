"""Policies: the permission matrix (``matrix.py``) and the shipped policy and price files."""

from keel.policies.matrix import (
    ADMIN_ROLE,
    DEFAULT_POLICY,
    EFFECTS,
    MAX_POLICY_BYTES,
    Decision,
    Effect,
    PolicyError,
    PolicyMatrix,
    Rule,
    UnknownRole,
)

__all__ = [
    "ADMIN_ROLE",
    "DEFAULT_POLICY",
    "EFFECTS",
    "MAX_POLICY_BYTES",
    "Decision",
    "Effect",
    "PolicyError",
    "PolicyMatrix",
    "Rule",
    "UnknownRole",
]
