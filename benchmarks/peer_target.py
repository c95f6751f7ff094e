"""keel as a target of the shared peer harness (`../shared/bench/peer_bench.py --target
benchmarks.peer_target:make_postgres`): keel's full guarded graph, built by `keel.create_guarded_agent`
over the harness's own fake model, LangChain tools and checkpointer.

What keel does that the peer does not, every run: the execution record, a permission decision and audit
rows per tool call, the tool-result row (exactly-once), a budget reservation and settlement per model call
(the harness's model is priced in peer_prices.yaml so the budget guard runs; it reports no usage, so each
settles to $0), breaker and rate-limit checks, the output filter, and every step checkpointed with
durability "sync" whatever the scenario asks (keel's exactly-once resume needs it). Off, because the
harness counts model calls and the peer has no equivalent: the plan call and long-term memory.

`guards` is accepted and ignored: keel always runs its guards (limits, approval on `delete_records`, PII
redaction of the answer); it has no second model to fall back to here.

Every run's outcome (status and terminated reason, by phase: `concurrency` when the harness's model sleeps,
else `sequential`) is counted in `OUTCOMES`; with `$KEEL_BENCH_OUTCOMES` set to a file path the counts are
written there as JSON when the process exits, which is how `make bench` tells a run that ended on a store
error (`guard_unavailable`, `llm_unavailable`) from a succeeded one.
"""

from __future__ import annotations

import atexit
import json
import os
import tempfile
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from keel import RunContext, Settings, create_guarded_agent, guarded_tool
from keel.app.guarded_agent import GuardedAgent
from keel.policies.matrix import PolicyMatrix

__all__ = ["make_embedded", "make_postgres"]

PRICES = Path(__file__).with_name("peer_prices.yaml")
LIMITS = Path(__file__).with_name("peer_limits.yaml")
POLICY = """
version: 1
roles: [user]
approvers: [user]
rules:
  - {role: user, tool: echo, resource: "*", effect: allow}
  - {role: user, tool: delete_records, resource: "*", effect: ask}
"""
PG_DSN = os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/bench")
RECORDS_DSN = os.environ.get("KEEL_BENCH_RECORDS_DSN") or PG_DSN
"""keel's records database: `make bench` gives every run a fresh one (the shared `bench` database may hold
the schema of another checkout's newer migrations); the harness's checkpoints stay in PG_DSN."""

OUTCOMES: Counter[str] = Counter()
"""Runs by "phase status[:terminated_reason]", e.g. "concurrency succeeded"."""

_AGENTS: dict[tuple[str, int], GuardedAgent] = {}
"""One agent (one set of backends: records pool, Redis clients) per profile and harness model; each
configuration gets a copy over its own checkpointer, so the process holds two records pools, not seven."""


class _Target:
    """The harness's `ainvoke(input, config)`: one new execution per call, as one user (the peer has no
    users; one user per run measured about the same in the concurrency scenario)."""

    def __init__(self, agent: GuardedAgent, phase: str) -> None:
        self.agent, self.user, self.phase = agent, f"bench-{uuid.uuid4().hex[:8]}", phase

    async def ainvoke(self, input: dict[str, Any], config: dict[str, Any]) -> Any:
        config = {k: v for k, v in config.items() if k != "durability"}  # keel: always "sync"
        out = await self.agent.ainvoke(input, config, context=RunContext(user_id=self.user, role="user"))
        reason = out.get("terminated_reason")
        OUTCOMES[f"{self.phase} {out.get('status')}" + (f":{reason}" if reason else "")] += 1
        return out


def _write_outcomes() -> None:
    path = os.environ.get("KEEL_BENCH_OUTCOMES")
    if path and OUTCOMES:
        with open(path, "w", encoding="utf-8") as file:
            json.dump(dict(OUTCOMES), file, indent=2)


atexit.register(_write_outcomes)


def _target(profile: str, settings: Settings, checkpointer: Any, model: Any, tools: list) -> _Target:
    key = (profile, id(model))
    if key not in _AGENTS:
        by_name = {t.name: t for t in tools}
        declared = [
            guarded_tool(by_name["echo"], effect="read"),
            guarded_tool(by_name["delete_records"], effect="idempotent", resource="table:{table}"),
        ]
        _AGENTS[key] = create_guarded_agent(
            model,
            declared,
            policy=PolicyMatrix.from_text(POLICY),
            prices=PRICES,
            settings=settings,
            identity=None,  # every run names its user
        )
    phase = "concurrency" if getattr(model, "sleep_s", 0) else "sequential"
    return _Target(_AGENTS[key].copy({"checkpointer": checkpointer}), phase)


def _home() -> Path:
    return Path(tempfile.mkdtemp(prefix="keel-peer-"))


def make_embedded(checkpointer: Any, model: Any, tools: list, *, guards: bool = False) -> _Target:
    """keel's embedded profile: records in SQLite, hot state in process."""
    settings = Settings(home=_home(), plan_enabled=False, memory_enabled=False, limits_file=LIMITS)
    return _target("embedded", settings, checkpointer, model, tools)


def make_postgres(checkpointer: Any, model: Any, tools: list, *, guards: bool = False) -> _Target:
    """keel's postgres profile: records in PostgreSQL, breakers and rate windows in Redis (127.0.0.1)."""
    settings = Settings(
        profile="postgres",
        database_url=RECORDS_DSN,
        home=_home(),
        plan_enabled=False,
        memory_enabled=False,
        limits_file=LIMITS,
        records_pool_size=20,
        # 200 runs in flight queue for the 20 records connections longer than the default 30 s; keel then
        # fails closed (guard_unavailable) and the harness, counting model calls, stops. Measured instead.
        records_pool_timeout_s=600.0,
        redis_prefix=f"keelbench:{uuid.uuid4().hex[:8]}:",
    )
    return _target("postgres", settings, checkpointer, model, tools)
