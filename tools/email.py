"""send_email: appends to the outbox table in the records database; it never sends anything."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from keel.context import RunContext
from keel.records import OutboxMessage
from keel.tools.spec import ToolContext, ToolSpec
from keel.tools.workspace import Workspace

__all__ = ["EMAIL_TOOLS"]

_EMAIL = r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,24}$"


class SendEmailArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(pattern=_EMAIL, description="Recipient address.")
    subject: str = Field(min_length=1, max_length=200, description="Subject line.")
    body: str = Field(max_length=20_000, description="Plain-text body.")


def _resource(args: SendEmailArgs, run: RunContext, ws: Workspace) -> str:
    return f"email:{args.to.lower()}"


async def _send_email(args: SendEmailArgs, ctx: ToolContext) -> str:
    assert ctx.conn is not None, "send_email is transactional: the executor passes its transaction"
    await ctx.records.add_outbox(
        OutboxMessage(
            thread_id=ctx.thread_id,
            tool_call_id=ctx.tool_call_id,
            user_id=ctx.run.user_id,
            recipient=args.to,
            subject=args.subject,
            body=args.body,
            created_at=datetime.now(UTC),
        ),
        conn=ctx.conn,
    )
    return f"queued email to {args.to} ({len(args.body)} characters) in the outbox"


EMAIL_TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        name="send_email",
        description="Queue an email in the outbox (keel never sends it itself; a relay does).",
        args_model=SendEmailArgs,
        run=_send_email,
        resource=_resource,
        transactional=True,
        effect="transactional",
    ),
)
