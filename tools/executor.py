"""Runs one tool call: validate, replay if done before, time out, record the result and the audit row."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from langchain_core.messages import ToolMessage
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from keel.audit import audit_event
from keel.context import RunContext
from keel.guards import Guard, ProposedCall, ToolGate, ToolGuard
from keel.guards.none import FreeToolGate, NoToolGuard
from keel.hotstate.tool_cache import CachedResult, ToolResultCache
from keel.records import AuditEvent, Records, ToolResult
from keel.redaction import redact_text
from keel.tool_status import ToolStatus
from keel.tools.registry import ToolRegistry, UnknownTool
from keel.tools.spec import ToolContext, ToolGuardRefused, ToolInputError, ToolSpec
from keel.tools.workspace import Workspace

__all__ = [
    "ToolExecutor",
    "Carried",
    "CheckedCall",
    "ToolCallRefused",
    "ToolOutcome",
    "ToolStatus",
    "args_digest",
]

_REPLAYED = "already executed; recorded result returned"
_CACHED = "cached: served from the tool result cache; the tool did not run and nothing was charged"
_RECORDED: dict[str, ToolStatus] = {"error": "failed"}
"""Statuses of tool_results rows written before migration 0008, as read now."""


class ToolCallRefused(Exception):
    """A tool call that cannot run as asked; the message is meant for the model. `kind`: unknown_tool,
    invalid_args, or the `reason` of the tool-call guard that refused it (too_many_calls, too_large)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckedCall:
    """A call whose tool exists and whose args validate."""

    spec: ToolSpec
    args: BaseModel
    resource: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Carried:
    """Writes of earlier steps of the run that commit in the call's first transaction, ahead of it:
    the permission decision's audit row and the model charges the run still owes the ledger."""

    audit: tuple[AuditEvent, ...] = ()
    owed: tuple[Mapping[str, str], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolOutcome:
    """What one executed call produced."""

    message: ToolMessage
    status: ToolStatus
    tool: str
    cost: float = 0.0
    """USD charged to the user's budget for this call (settled in the ledger)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Call:
    """One call being executed, and for whom."""

    call_id: str
    name: str
    args: dict[str, Any]
    run: RunContext
    thread_id: str

    def audit(self, **fields: Any) -> AuditEvent:
        return audit_event(
            self.run,
            self.thread_id,
            event="tool_call",
            tool=self.name,
            tool_call_id=self.call_id,
            args=self.args,
            **fields,
        )


def args_digest(args: dict[str, Any]) -> str:
    """A stable hash of tool arguments (an approval binds to it)."""
    blob = json.dumps(args, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:8]:
        where = ".".join(str(p) for p in err["loc"]) or "(arguments)"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


class ToolExecutor:
    """The one place a tool runs."""

    def __init__(
        self,
        registry: ToolRegistry,
        records: Records,
        workspace: Workspace,
        *,
        guard: ToolGuard | NoToolGuard,
        call_guards: Sequence[Guard[ProposedCall]] = (),
        default_timeout_s: float = 30.0,
        max_output_chars: int = 20_000,
        cache: ToolResultCache | None = None,
    ) -> None:
        self.registry = registry
        self.records = records
        self.workspace = workspace
        self.guard = guard
        """keel.guards.ToolGuard (rate limits, breaker, cost reservation) or the benchmark's NoToolGuard."""
        self.call_guards = tuple(call_guards)
        """keel.guards.Guard[ProposedCall]s, checked in order before the schema (per-turn cap, size)."""
        self.default_timeout_s = default_timeout_s
        self.max_output_chars = max_output_chars
        self.cache = cache
        """The tool result cache (keel.hotstate.tool_cache), for `read` tools only; None: off."""

    async def check(self, name: str, args: Any, run: RunContext, position: int | None = None) -> CheckedCall:
        """Validate a call: its tool-call guards pass, the tool exists, args fit its schema, the resource
        resolves. `position`: the call's place in its model turn (for the per-turn cap)."""
        proposed = ProposedCall(name=name, args=args, run=run, position=position)
        for guard in self.call_guards:
            if (refusal := await guard.check(proposed)) is not None:
                raise ToolCallRefused(guard.reason, refusal)
        try:
            spec = self.registry.get(name)
        except UnknownTool:
            known = ", ".join(self.registry.names())
            raise ToolCallRefused("unknown_tool", f"unknown tool {name!r}; available: {known}") from None
        if not isinstance(args, dict):
            raise ToolCallRefused("invalid_args", f"arguments for {name} must be a JSON object")
        try:
            parsed = spec.args_model.model_validate(args)
            resource = spec.resource(parsed, run, self.workspace)
        except ValidationError as exc:
            raise ToolCallRefused("invalid_args", f"invalid arguments for {name}: {_explain(exc)}") from None
        except ToolInputError as exc:
            raise ToolCallRefused("invalid_args", f"invalid arguments for {name}: {exc}") from None
        return CheckedCall(spec=spec, args=parsed, resource=resource)

    def _clip(self, text: str) -> str:
        text = redact_text(text)
        if len(text) <= self.max_output_chars:
            return text
        cut = len(text) - self.max_output_chars
        return text[: self.max_output_chars] + f"\n[… output truncated by keel: {cut} more characters]"

    async def execute(
        self,
        call_id: str,
        name: str,
        args: dict[str, Any],
        run: RunContext,
        thread_id: str,
        *,
        deadline: float,
        carried: Carried = Carried(),
    ) -> ToolOutcome:
        """Run one approved call exactly once per (thread, tool_call_id); replay its result otherwise.

        Two transactions: before the call, the exactly-once read with what `carried` brings (the
        decision's audit row: no tool runs whose permission could not be recorded; the run's owed model
        charges); after it, the result row, its audit row and its charge."""
        call = _Call(call_id=call_id, name=name, args=args, run=run, thread_id=thread_id)
        done = await self._intent(call, carried)
        if done is not None:
            recorded = _RECORDED.get(done.status, done.status)
            outcome = self._outcome(call, done.output, "replayed" if recorded == "ok" else recorded)
            if recorded == "ok" and done.execution_id == run.execution_id and not done.cached:
                # Its charge committed with this row (see _record): count it in this run's cost again,
                # since the state that had counted it was lost with the crash.
                outcome = replace(outcome, cost=self.guard.charge_of(name))
            return outcome
        try:
            checked = await self.check(name, args, run)
        except ToolCallRefused as exc:
            await self._record(call, None, "invalid", f"error: {exc.message}", "", time.perf_counter())
            return self._outcome(call, f"error: {exc.message}", "invalid")
        key = self._cache_key(checked, run)
        if key is not None and self.cache is not None and (hit := await self.cache.lookup(key)) is not None:
            # Allowed by the policy already (the permission step runs first, always): recorded and audited
            # as any call, marked cached, neither run nor charged.
            await self._record(call, checked, "ok", hit.output, "", time.perf_counter(), cached=hit)
            return self._outcome(call, hit.output, "ok")
        try:
            async with self.guard.tool_call(name, run, thread_id, call_id) as gate:
                return await gate.charged(await self._run_checked(call, checked, deadline, gate))
        except ToolGuardRefused as exc:  # refused by a guard: nothing ran
            await self._record(call, checked, "refused", f"error: {exc}", "", time.perf_counter())
            return self._outcome(call, f"error: {exc}", "refused")

    async def _intent(self, call: _Call, carried: Carried) -> ToolResult | None:
        """The call's recorded result if it already ran (then a `replayed` audit row); else the carried
        decision row, written ahead of the call. The run's owed charges settle in the same transaction."""
        if not carried.audit and not carried.owed:
            done = await self.records.get_tool_result(call.thread_id, call.call_id)
            if done is not None:
                await self.records.append_audit(call.audit(status="replayed", detail=_REPLAYED))
            return done
        async with self.records.transaction() as tx:
            done = await self.records.get_tool_result(call.thread_id, call.call_id, conn=tx)
            if done is not None:  # the carried decision row committed with its first attempt
                await self.records.append_audit(call.audit(status="replayed", detail=_REPLAYED), conn=tx)
            elif carried.audit:
                await self.records.append_audit_many(list(carried.audit), conn=tx)
            await self.guard.settle_owed(carried.owed, conn=tx)
        return done

    async def _run_checked(
        self, call: _Call, checked: CheckedCall, deadline: float, gate: ToolGate | FreeToolGate
    ) -> ToolOutcome:
        """Time out, run and record one checked call; a successful call's charge (`gate`, a ToolGate)
        commits in the transaction of its result row."""
        name = call.name
        limit_s = min(checked.spec.timeout_s or self.default_timeout_s, deadline - time.time())
        started = time.perf_counter()
        status: ToolStatus = "ok"
        raw = ""
        try:
            if limit_s <= 0:
                raise TimeoutError
            if checked.spec.transactional:
                async with self.records.transaction() as conn:
                    raw = await self._run(checked, call, limit_s, conn)
                    output = self._clip(raw)
                    await self._record(call, checked, "ok", output, raw, started, conn=conn, charge=gate)
                return self._outcome(call, output, "ok")
            raw = await self._run(checked, call, limit_s, None)
            output = self._clip(raw)
        except TimeoutError:
            status = "timeout"
            output = f"error: {name} timed out after {max(limit_s, 0):.1f} s and was cancelled"
        except ToolInputError as exc:
            status, output = "invalid", f"error: {exc}"
        except Exception as exc:  # noqa: BLE001 - a failing tool is reported to the model, not raised
            status, output = "failed", self._clip(f"error: {name} failed: {type(exc).__name__}: {exc}")
        await self._record(
            call, checked, status, output, raw, started, charge=gate if status == "ok" else None
        )
        key = self._cache_key(checked, call.run) if status == "ok" else None
        if key is not None and self.cache is not None:  # kept once its result row has committed
            digest = hashlib.sha256(raw.encode()).hexdigest()
            await self.cache.remember(key, CachedResult(output=output, result_digest=digest))
        return self._outcome(call, output, status)

    def _cache_key(self, checked: CheckedCall, run: RunContext) -> str | None:
        """The tool cache key of a call that may be served from the cache, else None: only a tool declared
        `read` (keel.tool_effect); a side effect (idempotent, external, transactional) always runs."""
        spec = checked.spec
        if self.cache is None or spec.effect != "read" or spec.transactional:
            return None
        return ToolResultCache.key(
            tenant=run.tenant,
            user_id=run.user_id,
            version=run.version,
            tool=spec.name,
            args=checked.args.model_dump(mode="json"),
        )

    async def _run(
        self, checked: CheckedCall, call: _Call, limit_s: float, conn: AsyncConnection | None
    ) -> str:
        ctx = ToolContext(
            run=call.run,
            thread_id=call.thread_id,
            tool_call_id=call.call_id,
            workspace=self.workspace,
            records=self.records,
            conn=conn,
        )
        async with asyncio.timeout(limit_s):
            return str(await checked.spec.run(checked.args, ctx))

    async def _record(
        self,
        call: _Call,
        checked: CheckedCall | None,
        status: str,
        output: str,
        raw: str,
        started: float,
        *,
        conn: AsyncConnection | None = None,
        charge: ToolGate | None = None,
        cached: CachedResult | None = None,
    ) -> None:
        """The tool_results row, the audit row and the call's charge (`charge.settle(conn)`) in one
        transaction (the tool's own, when it has one): a crash leaves all or none, so a replayed
        result is never a call that went uncharged."""
        result = ToolResult(
            thread_id=call.thread_id,
            tool_call_id=call.call_id,
            execution_id=call.run.execution_id,
            tool=call.name,
            status=status,
            output=output,
            created_at=datetime.now(UTC),
            cached=cached is not None,
        )
        event = call.audit(
            status=status,
            resource=checked.resource if checked else None,
            duration_ms=int((time.perf_counter() - started) * 1000),
            result_digest=(
                cached.result_digest
                if cached is not None
                else hashlib.sha256(raw.encode()).hexdigest()
                if status == "ok"
                else None
            ),
            detail=_CACHED if cached is not None else None if status == "ok" else output,
        )
        if conn is not None:
            await self._write(result, event, charge, conn)
            return
        async with self.records.transaction() as tx:
            await self._write(result, event, charge, tx)

    async def _write(
        self, result: ToolResult, event: AuditEvent, charge: ToolGate | None, conn: AsyncConnection
    ) -> None:
        await self.records.save_tool_result(result, conn=conn)
        await self.records.append_audit(event, conn=conn)
        if charge is not None:
            await charge.settle(conn)

    @staticmethod
    def _outcome(call: _Call, output: str, status: ToolStatus) -> ToolOutcome:
        message = ToolMessage(
            content=output,
            tool_call_id=call.call_id,
            name=call.name,
            status="success" if status in ("ok", "replayed") else "error",
        )
        return ToolOutcome(message=message, status=status, tool=call.name)
