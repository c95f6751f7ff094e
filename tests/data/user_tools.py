"""An application's own tools, as a user module keel.yaml imports by path (tests/test_tools_config.py)."""

from __future__ import annotations

from langchain_core.tools import tool

ORDERS = {"A1": "shipped", "B2": "pending"}
REFUNDS: list[str] = []
"""Orders refunded by `refund_order` (a test checks a denied call never got here)."""


@tool
def lookup_order(order_id: str) -> str:
    """Look up an order's status by its id."""
    return f"order {order_id}: {ORDERS.get(order_id, 'unknown')}"


def refund_order(order_id: str, amount: float) -> str:
    """Refund an amount on an order."""
    REFUNDS.append(order_id)
    return f"refunded {amount:.2f} on {order_id}"


def undocumented(x: int) -> int:
    return x


NOT_A_TOOL = 42
