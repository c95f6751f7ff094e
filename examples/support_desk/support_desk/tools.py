"""The support desk's tools: plain typed functions over the ticket database (support_desk.db).

keel reads each one's schema from its signature and its description from its docstring. keel.yaml gives
each its effect (what a crash means for it) and the resource the permission matrix is asked about:
reads are `read` (a resumed run gets the recorded result), `close_ticket` is `idempotent` (closing twice is
closing once), and `refund_order` is `external`: it moves money, so keel hands it an idempotency key that
makes a second attempt of the same call a no-op, and a user's refund waits for an approver.
"""

from __future__ import annotations

from support_desk.db import connect

__all__ = ["lookup_order", "list_tickets", "read_ticket", "refund_order", "close_ticket"]


def _refunded(conn, order_id: int) -> float:  # noqa: ANN001 - a sqlite3 connection
    row = conn.execute(
        "SELECT COALESCE(SUM(amount), 0) FROM refunds WHERE order_id = ?", (order_id,)
    ).fetchone()
    return float(row[0])


def lookup_order(order_id: int) -> str:
    """Look up an order by its number: customer, item, total, status and what was refunded."""
    with connect() as conn:
        row = conn.execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()
        if row is None:
            return f"no order {order_id}"
        refunded = _refunded(conn, order_id)
    return (
        f"order {row['id']}: {row['item']} for {row['customer']}, total ${row['total']:.2f}, "
        f"{row['status']}, refunded ${refunded:.2f}"
    )


def list_tickets(status: str = "open") -> str:
    """List support tickets by status (`open` or `closed`), one per line."""
    with connect() as conn:
        rows = conn.execute(
            "SELECT id, order_id, customer, subject FROM tickets WHERE status = ? ORDER BY id", (status,)
        ).fetchall()
    if not rows:
        return f"no {status} tickets"
    return "\n".join(f"#{r['id']} order {r['order_id']} ({r['customer']}): {r['subject']}" for r in rows)


def read_ticket(ticket_id: int) -> str:
    """Read one support ticket: its order, customer, subject, message and status."""
    with connect() as conn:
        r = conn.execute("SELECT * FROM tickets WHERE id = ?", (ticket_id,)).fetchone()
    if r is None:
        return f"no ticket {ticket_id}"
    closed = f" ({r['resolution']})" if r["resolution"] else ""
    return (
        f"ticket #{r['id']} on order {r['order_id']} from {r['customer']}: {r['subject']}. {r['body']} "
        f"[{r['status']}{closed}]"
    )


def refund_order(order_id: int, amount: float, idempotency_key: str) -> str:
    """Refund an amount (in dollars) on an order; never more than what is left to refund."""
    # `idempotency_key` is filled by keel (effect: external) and hidden from the model: the same on every
    # attempt of one call, so a call run again after a crash finds its refund instead of making another.
    if amount <= 0:
        raise ValueError("a refund must be a positive amount")
    with connect() as conn:
        done = conn.execute("SELECT * FROM refunds WHERE idempotency_key = ?", (idempotency_key,)).fetchone()
        if done is not None:
            return f"refund #{done['id']}: ${done['amount']:.2f} on order {done['order_id']}"
        order = conn.execute("SELECT total FROM orders WHERE id = ?", (order_id,)).fetchone()
        if order is None:
            raise ValueError(f"no order {order_id}")
        left = float(order["total"]) - _refunded(conn, order_id)
        if amount > left + 1e-9:
            raise ValueError(f"order {order_id} has only ${left:.2f} left to refund")
        cur = conn.execute(
            "INSERT INTO refunds (order_id, amount, idempotency_key) VALUES (?, ?, ?)",
            (order_id, amount, idempotency_key),
        )
    return f"refund #{cur.lastrowid}: ${amount:.2f} on order {order_id}"


def close_ticket(ticket_id: int, resolution: str = "resolved") -> str:
    """Close a support ticket with a short resolution; closing a closed ticket changes nothing."""
    with connect() as conn:
        r = conn.execute("SELECT status, resolution FROM tickets WHERE id = ?", (ticket_id,)).fetchone()
        if r is None:
            raise ValueError(f"no ticket {ticket_id}")
        if r["status"] == "closed":
            return f"ticket #{ticket_id} was already closed ({r['resolution'] or 'no resolution'})"
        conn.execute(
            "UPDATE tickets SET status = 'closed', resolution = ? WHERE id = ?", (resolution, ticket_id)
        )
    return f"ticket #{ticket_id} closed: {resolution}"
