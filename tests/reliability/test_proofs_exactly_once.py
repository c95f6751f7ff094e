"""Proofs that send_email's outbox row, result row and audit row commit together, or not at all."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any

import pytest

from keel.testing.fake_model import tool_call


class _CommitLost(Exception):
    """The database connection dropped just before the effect's transaction committed."""


def _lose_the_outbox_commit_once(monkeypatch: pytest.MonkeyPatch, records: Any) -> None:
    """The first transaction that queued an email is rolled back at its end instead of committing."""
    transaction, add_outbox = records.transaction, records.add_outbox
    queued_in: set[int] = set()
    lost: list[bool] = []

    async def spy_outbox(message: Any, *, conn: Any) -> None:
        queued_in.add(id(conn))
        await add_outbox(message, conn=conn)

    @asynccontextmanager
    async def losing_transaction():
        async with transaction() as conn:
            yield conn
            if id(conn) in queued_in and not lost:
                lost.append(True)
                raise _CommitLost("connection reset before COMMIT")

    monkeypatch.setattr(records, "add_outbox", spy_outbox)
    monkeypatch.setattr(records, "transaction", losing_transaction)


async def test_a_lost_commit_of_the_email_leaves_no_ok_result_or_audit_row(make_keel, monkeypatch) -> None:
    email = tool_call("send_email", call_id="mail-1", to="bob@example.com", subject="hi", body="hello bob")
    async with make_keel([email, "Done."]) as keel:
        _lose_the_outbox_commit_once(monkeypatch, keel.records)
        out = await keel.run("email bob", user_id="carol-proof", role="admin")
        assert (out.status, out.terminated_reason) == ("failed", "tools_refused")  # its only call failed
        assert await keel.records.list_outbox(user_id="carol-proof") == []  # the effect did not happen...
        result = await keel.records.get_tool_result(out.thread_id, "mail-1")
        assert result is not None and result.status == "failed"  # ...so nothing says it did
        audited = [
            r.status
            for r in await keel.records.audit_for(thread_id=out.thread_id)
            if r.event == "tool_call" and r.tool == "send_email"
        ]
        assert audited == ["failed"]


async def test_a_recorded_email_is_replayed_not_sent_again(make_keel) -> None:
    email = tool_call("send_email", call_id="mail-2", to="bob@example.com", subject="hi", body="hello bob")
    async with make_keel([email, "Done.", email, "Done again."]) as keel:
        first = await keel.run("email bob", user_id="dave", role="admin")
        again = await keel.run("email bob again", user_id="dave", role="admin", thread_id=first.thread_id)
        assert again.status == "succeeded"
        assert len(await keel.records.list_outbox(user_id="dave")) == 1
        audited = [
            r.status
            for r in await keel.records.audit_for(thread_id=first.thread_id)
            if r.event == "tool_call" and r.tool == "send_email"
        ]
        assert audited == ["ok", "replayed"]
