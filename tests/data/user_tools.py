"""An application's own tools, as a user module keel.yaml imports by path (tests/test_tools_config.py)."""

from __future__ import annotations

from typing import Annotated

from langchain_core.tools import InjectedToolCallId, tool
from langgraph.prebuilt import InjectedState
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

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


CHARGES: dict[str, float] = {}
"""A payment provider's charges by idempotency key: a repeat of a key is not charged twice."""
CALLS: list[str] = []
"""Every key `charge_card` was called with (a re-run after a crash shows here twice, in CHARGES once)."""


def charge_card(order_id: str, amount: float, idempotency_key: str) -> str:
    """Charge an amount to an order's card."""
    CALLS.append(idempotency_key)
    CHARGES.setdefault(idempotency_key, amount)
    return f"charged {amount:.2f} for {order_id}"


@tool
def ship_order(order_id: str, tool_call_id: Annotated[str, InjectedToolCallId]) -> str:
    """Ask the warehouse to ship an order."""
    return f"shipping {order_id} (request {tool_call_id})"


async def note_order(order_id: str, note: str, transaction: AsyncConnection) -> str:
    """Add a note to an order (in the records database, in keel's transaction)."""
    await transaction.execute(
        text("INSERT INTO user_order_notes (order_id, note) VALUES (:o, :n)"), {"o": order_id, "n": note}
    )
    return f"noted on {order_id}"


def sync_note(order_id: str, transaction: AsyncConnection) -> str:
    """A transactional tool that is not async (refused)."""
    return order_id


async def note_then_fail(order_id: str, transaction: AsyncConnection) -> str:
    """Write a note, then fail: the write must not survive."""
    await transaction.execute(
        text("INSERT INTO user_order_notes (order_id, note) VALUES (:o, 'half')"), {"o": order_id}
    )
    raise RuntimeError("the warehouse said no")


@tool
def with_state(order_id: str, state: Annotated[dict, InjectedState]) -> str:
    """A tool that wants LangGraph's state (refused)."""
    return order_id
