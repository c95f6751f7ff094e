"""The agent's tools: plain typed functions. keel builds each one's schema from its signature and its
description from its docstring, validates the model's arguments against it, asks the permission matrix
about the resource declared in keel.yaml, and audits every call."""

from __future__ import annotations

__all__ = ["lookup_order"]

ORDERS = {"A1": "shipped", "A2": "being packed", "A3": "delivered"}
"""Stand-in data: replace with your database or API."""


def lookup_order(order_id: str) -> str:
    """Look up an order's status by its id (e.g. A1)."""
    status = ORDERS.get(order_id)
    return f"order {order_id}: {status}" if status else f"no order {order_id}"
