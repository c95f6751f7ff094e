"""Scripted mutation testing of keel's guarantees (docs/security.md): `make mutate`.

Each mutant is a one-line break of one guarantee: (file, exact old text, new text, the tests that must
catch it). The tree is copied (``git ls-files``) into a temporary directory; each mutant is applied
there alone, its tests run with that copy first on ``PYTHONPATH``, and the file is restored. The working
tree is never touched.

Outcomes: ``killed`` (the tests failed), ``SURVIVED`` (they passed: the guarantee is unproven),
``ERROR`` (the old text is not in the file exactly once, or pytest could not run the tests: re-aim the
mutant). Exit status is 0 only when every mutant is killed.

    python scripts/mutate.py            # all mutants
    python scripts/mutate.py -k budget  # mutants whose id contains "budget"
    python scripts/mutate.py --list
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PER_MUTANT_TIMEOUT_S = 300


@dataclass(frozen=True, slots=True, kw_only=True)
class Mutant:
    """One one-line break of a guarantee and the tests that must notice it."""

    id: str
    guarantee: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


M = Mutant
MUTANTS: tuple[Mutant, ...] = (
    # --- the audit log -------------------------------------------------------------------------------
    M(
        id="audit-hash-skips-args-detail-resource",
        guarantee="audit rows are hash-chained over all their fields",
        file="keel/audit_chain.py",
        old="        if value is None:\n            continue",
        new="        if value is None or name in ('args', 'detail', 'resource'):\n            continue",
        tests=("tests/test_audit_chain.py",),
    ),
    M(
        id="audit-hash-ignores-prev-hash",
        guarantee="audit rows are hash-chained (a deleted row breaks the next one)",
        file="keel/audit_chain.py",
        old="if row.prev_hash != self.prev:",
        new="if False:",
        tests=("tests/test_audit_chain.py",),
    ),
    M(
        id="audit-append-without-head-lock",
        guarantee="appends to one audit chain are serialised on its head (each thread's chain stays linear)",
        file="keel/records/store.py",
        old="        .with_for_update()\n",
        new="",
        tests=("tests/test_audit_chain.py", "tests/reliability/test_proofs_audit_chains.py"),
    ),
    M(
        id="audit-verify-ignores-heads",
        guarantee="keel audit verify finds rows deleted from the end of a chain (its sealed head)",
        file="keel/audit_chain.py",
        old="        if self.count < head.row_count:",
        new="        if False:",
        tests=("tests/test_audit_chain.py",),
    ),
    # --- exactly once ---------------------------------------------------------------------------------
    M(
        id="decision-args-hash-not-bound",
        guarantee="a decision for other args than the request's is refused on every decide path",
        file="keel/approvals.py",
        old="if choice.args_hash is None or choice.args_hash == row.args_hash:",
        new="if True:",
        tests=("tests/reliability/test_args_hash_binding.py", "tests/test_cli.py"),
    ),
    M(
        id="resume-ignores-saved-step-writes",
        guarantee="a thread whose step was saved but whose checkpoint was not is resumed, not refused",
        file="keel/app/service.py",
        old="if snapshot.next or snapshot.tasks:",
        new="if snapshot.next:",
        tests=("tests/reliability/test_durability.py", "tests/reliability/test_postgres_down.py"),
    ),
    M(
        id="run-durability-async",
        guarantee="a step's checkpoint is written before the next step starts (kill -9 resumes exactly)",
        file="keel/app/service.py",
        old='durability: str = "sync"',
        new='durability: str = "async"',
        tests=("tests/reliability/test_durability.py",),
    ),
    M(
        id="send-email-rows-outside-effect-transaction",
        guarantee="send_email: outbox row, result row and audit row commit together",
        file="tools/executor.py",
        old='await self._record(call, checked, "ok", output, raw, started, conn=conn, charge=gate)',
        new='await self._record(call, checked, "ok", output, raw, started, conn=None, charge=gate)',
        tests=("tests/reliability/test_proofs_exactly_once.py",),
    ),
    M(
        id="recorded-call-runs-again",
        guarantee="a recorded call is never executed again (exactly once by tool_call_id)",
        file="tools/executor.py",
        old="if done is not None:\n            recorded = _RECORDED.get",
        new="if False:\n            recorded = _RECORDED.get",
        tests=("tests/test_recovery.py", "tests/reliability/test_proofs_exactly_once.py"),
    ),
    # --- permissions ------------------------------------------------------------------------------------
    M(
        id="matrix-default-allow",
        guarantee="no matching rule denies (default deny)",
        file="policies/matrix.py",
        old='return Decision(effect="deny", rule=None, source=self.source)',
        new='return Decision(effect="allow", rule=None, source=self.source)',
        tests=("tests/test_security_policy.py", "tests/test_policy_matrix.py"),
    ),
    M(
        id="matrix-last-match-wins",
        guarantee="the first matching rule wins",
        file="policies/matrix.py",
        old="for rule in self.rules:",
        new="for rule in reversed(self.rules):",
        tests=("tests/test_security_policy.py", "tests/test_policy_matrix.py"),
    ),
    M(
        id="permission-deny-runs-tool",
        guarantee="a tool runs only when the matrix says allow (or ask and approved)",
        file="nodes/permission.py",
        old='if decision.effect == "deny":',
        new='if decision.effect == "never":',
        tests=("tests/test_security_policy.py",),
    ),
    # --- approvals ---------------------------------------------------------------------------------------
    M(
        id="approval-args-hash-not-checked",
        guarantee="approvals bind to the sha256 of the args shown",
        file="nodes/approval.py",
        old="await check_args_hash(records, row, decision)  # the same 409",
        new="pass  # await check_args_hash(records, row, decision)  # the same 409",
        tests=("tests/test_security_approvals.py", "tests/reliability/test_proofs_approvals.py"),
    ),
    M(
        id="approval-edit-not-rechecked",
        guarantee="an approver's edit is checked against the matrix again (cannot escalate)",
        file="nodes/approval.py",
        old='if decision.effect == "deny":',
        new='if decision.effect == "never":',
        tests=("tests/test_security_approvals.py",),
    ),
    M(
        id="approval-edit-checked-against-stale-policy",
        guarantee="an approver's edit is checked against the policy in force (hot-reloaded file)",
        file="policies/watcher.py",
        old="if sig is None or sig == self._seen:",
        new="if True:",
        tests=("tests/reliability/test_proofs_approvals.py", "tests/test_security_policy.py"),
    ),
    M(
        id="approval-expiry-ignored",
        guarantee="an expired request counts as rejected",
        file="nodes/approval.py",
        old='status="expired" if datetime.now(UTC) >= row.expires_at else decision.status,',
        new="status=decision.status,",
        tests=("tests/test_security_approvals.py",),
    ),
    # --- budgets and guards ------------------------------------------------------------------------------
    M(
        id="budget-reserve-no-refusal",
        guarantee="a call whose estimate does not fit the monthly budget is refused",
        file="keel/budget/ledger.py",
        old="if estimate > status.remaining:",
        new="if False:",
        tests=("tests/test_budget.py",),
    ),
    M(
        id="budget-reserve-without-fit-check",
        guarantee="concurrent reservations (across processes) never overdraw the budget",
        file="keel/budget/statements.py",
        old="        where=None if zero else fits,\n",
        new="        where=None,\n",
        tests=("tests/reliability/test_proofs_budget.py",),
    ),
    M(
        id="model-breaker-open-admits",
        guarantee="an open model breaker refuses the call",
        file="keel/guards/model.py",
        old="    if not decision.allowed:\n        raise CircuitOpen",
        new="    if False:\n        raise CircuitOpen",
        tests=("tests/test_guards.py", "tests/reliability/test_proofs_breaker.py"),
    ),
    M(
        id="tool-breaker-open-admits",
        guarantee="an open tool breaker refuses the call",
        file="keel/guards/tool_breaker.py",
        old="        if not decision.allowed:\n",
        new="        if False:\n",
        tests=("tests/test_guards.py",),
    ),
    M(
        id="tool-rate-limit-admits",
        guarantee="a tool over its rate limit is refused",
        file="keel/guards/rate_limit.py",
        old="if admission.limited_by is not None:",
        new="if False:",
        tests=("tests/test_guards.py",),
    ),
    M(
        id="redis-down-fails-open",
        guarantee="guards fail closed when Redis is down",
        file="keel/guards/model.py",
        old='raise GuardUnavailable(f"the circuit breaker of model {model}", exc) from exc',
        new="decision = __import__('types').SimpleNamespace(allowed=True, probe=False, failures=0)",
        tests=("tests/test_guards.py",),
    ),
    # --- redaction --------------------------------------------------------------------------------------
    M(
        id="tool-output-not-redacted",
        guarantee="secrets are redacted from tool output entering state",
        file="tools/executor.py",
        old="        text = redact_text(text)\n",
        new="",
        tests=("tests/test_redaction.py", "tests/reliability/test_proofs_redaction.py"),
    ),
    M(
        id="audit-detail-not-redacted",
        guarantee="secrets are redacted from audit rows",
        file="keel/audit.py",
        old="detail=redact_text(detail) if detail else detail,",
        new="detail=detail,",
        tests=("tests/test_redaction.py", "tests/reliability/test_proofs_redaction.py"),
    ),
    M(
        id="execution-task-not-redacted",
        guarantee="secrets are redacted from the execution record's task",
        file="nodes/recall.py",
        old="task=redact_text(task),",
        new="task=task,",
        tests=("tests/test_redaction.py", "tests/reliability/test_proofs_redaction.py"),
    ),
    M(
        id="answer-not-redacted",
        guarantee="secrets are redacted from the execution record's answer",
        file="nodes/finalize.py",
        old="answer = safe_text(redact_text(raw))",
        new="answer = safe_text(raw)",
        tests=("tests/test_redaction.py", "tests/reliability/test_proofs_redaction.py"),
    ),
    M(
        id="refusal-not-redacted",
        guarantee="secrets are redacted from refusals entering state (they quote the model's args)",
        file="nodes/permission.py",
        old="return ToolMessage(content=redact_text(text),",
        new="return ToolMessage(content=text,",
        tests=("tests/reliability/test_proofs_redaction.py",),
    ),
    # --- metrics -------------------------------------------------------------------------------------
    M(
        id="metrics-tool-call-counted-twice",
        guarantee="Prometheus counts each tool call once",
        file="keel/observability/metrics.py",
        old='m.tool_calls.add(1, {"tool": tool, "status": status})',
        new='m.tool_calls.add(2, {"tool": tool, "status": status})',
        tests=("tests/test_observability.py",),
    ),
    M(
        id="metrics-run-counted-twice",
        guarantee="Prometheus counts each run once",
        file="keel/observability/metrics.py",
        old="_m().runs.add(1, attrs)",
        new="_m().runs.add(2, attrs)",
        tests=("tests/test_observability.py",),
    ),
    # --- isolation ---------------------------------------------------------------------------------------
    M(
        id="recall-without-tenant-filter",
        guarantee="recall sees only the user's own tenant's earlier runs",
        file="nodes/recall.py",
        old="if e.execution_id != run.execution_id and e.tenant == run.tenant",
        new="if e.execution_id != run.execution_id",
        tests=("tests/reliability/test_proofs_isolation.py",),
    ),
    M(
        id="memory-row-recheck-removed",
        guarantee="a memory read back is re-checked against the scope",
        file="memory/long_term.py",
        old='if md.get("user_id") != scope.user_id or md.get("tenant") != scope.tenant:',
        new="if False:",
        tests=("tests/test_memory_long_term.py", "tests/reliability/test_proofs_isolation.py"),
    ),
    M(
        id="memory-collection-not-per-tenant",
        guarantee="each (tenant, user) has its own memory collection",
        file="memory/long_term.py",
        old='digest = hashlib.sha256(f"{scope.tenant}\\x00{scope.user_id}".encode()).hexdigest()[:32]',
        new='digest = hashlib.sha256(f"{scope.user_id}".encode()).hexdigest()[:32]',
        tests=("tests/test_memory_long_term.py", "tests/reliability/test_proofs_isolation.py"),
    ),
    M(
        id="server-threads-not-owner-filtered",
        guarantee="on the server, threads and runs are filtered by owner",
        file="keel/server/auth.py",
        old='return None if who.role == ADMIN_ROLE else {"owner": who.user_id}',
        new="return None",
        tests=("tests/test_server.py",),
    ),
    M(
        id="server-budget-other-user",
        guarantee="on the server, a user reads only their own budget",
        file="keel/server/routes.py",
        old="if who.role != ADMIN_ROLE and who.user_id != user_id:",
        new="if False:",
        tests=("tests/test_server.py",),
    ),
    # --- keel on Aegra (make serve) ------------------------------------------------------------------------
    M(
        id="aegra-run-on-another-users-thread",
        guarantee="on Aegra, a user cannot start a run on another user's thread",
        file="keel/server/aegra.py",
        old="if owner is not None and owner != user.identity:",
        new="if False:",
        tests=(
            "tests/test_server_e2e.py::test_a_paused_run_is_seen_run_on_and_decided_only_by_whom_it_may[aegra]",
        ),
    ),
    M(
        id="aegra-run-skips-keels-run-checks",
        guarantee="on Aegra, the run's context is the key's and a raw resume by a non-approver is a 403",
        file="keel/server/aegra.py",
        old="        await keel_auth.create_run(ctx, value)  # type: ignore[arg-type]",
        new="        pass",
        tests=("tests/test_server_e2e.py::test_a_client_context_naming_another_user_is_refused[aegra-wait]",),
    ),
    M(
        id="aegra-graph-keeps-the-configs-user",
        guarantee="on Aegra, the run's user is the authenticated one whatever a config names",
        file="keel/app/aegra_graph.py",
        old='config["configurable"] = {**(config.get("configurable") or {}), "langgraph_auth_user": user}',
        new='config["configurable"] = {"langgraph_auth_user": user, **(config.get("configurable") or {})}',
        tests=("tests/test_aegra_graph.py",),
    ),
)


MAPPED = ("graphs", "nodes", "tools", "policies", "memory")


def _copy_tree(dest: Path) -> None:
    """Tracked and untracked (not ignored) files as they are now in the working tree."""
    names = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\0")
    for name in filter(None, names):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    # graphs/ nodes/ tools/ policies/ memory/ install as keel.graphs, ...: the editable install maps those
    # names to the checkout, so in the copy they must be found inside its own keel/ (else a mutant in
    # nodes/ would be tested against the checkout's unchanged nodes/ and survive for nothing).
    for folder in MAPPED:
        (dest / "keel" / folder).symlink_to(Path("..") / folder, target_is_directory=True)
    _check_copy_is_imported(dest)


def _check_copy_is_imported(tree: Path) -> None:
    """Every package a mutant may touch is imported from the copy, not from the checkout."""
    code = (
        "import sys, importlib; print('\\n'.join(importlib.import_module(m).__file__ for m in sys.argv[1:]))"
    )
    modules = ["keel", *(f"keel.{folder}" for folder in MAPPED)]
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code, *modules], cwd=tree, env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    stray = [f for f in out if not f.startswith(str(tree))]
    if stray:
        raise SystemExit(f"mutate: the copy is not what the tests import: {stray}")


def _run_one(m: Mutant, tree: Path) -> tuple[str, str]:
    """Apply one mutant in `tree`, run its tests, restore the file; (outcome, note)."""
    target = tree / m.file
    if not target.is_file():
        return "ERROR", f"{m.file} does not exist"
    original = target.read_text()
    found = original.count(m.old)
    if found != 1:
        return "ERROR", f"old text found {found} times in {m.file}: re-aim the mutant"
    missing = [t for t in m.tests if not (tree / t.split("::")[0]).exists()]
    if missing:
        return "ERROR", f"missing test file(s): {', '.join(missing)}"
    target.write_text(original.replace(m.old, m.new))
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *m.tests]
    try:
        proc = subprocess.run(
            cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=PER_MUTANT_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        return "killed", f"tests hung past {PER_MUTANT_TIMEOUT_S} s"
    finally:
        target.write_text(original)
    last = (proc.stdout.strip().splitlines() or [""])[-1]
    if proc.returncode == 0:
        return "SURVIVED", last
    if proc.returncode == 1:
        return "killed", last
    return "ERROR", f"pytest exit {proc.returncode}: {last or proc.stderr.strip()[-200:]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default="", help="only mutants whose id contains this")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    opts = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if opts.k in m.id]
    if opts.list:
        for m in chosen:
            print(f"{m.id:45} {m.file:28} {m.guarantee}")
        return 0
    rows: list[tuple[Mutant, str, str, float]] = []
    with tempfile.TemporaryDirectory(prefix="keel-mutate-") as tmp:
        tree = Path(tmp)
        _copy_tree(tree)
        for m in chosen:
            started = time.monotonic()
            outcome, note = _run_one(m, tree)
            rows.append((m, outcome, note, time.monotonic() - started))
            print(f"{outcome:8} {m.id:45} {time.monotonic() - started:6.1f}s  {note}", flush=True)
    print(f"\n{'outcome':8} | {'mutant':45} | guarantee")
    print(f"{'-' * 8}-+-{'-' * 45}-+-{'-' * 40}")
    for m, outcome, _, _ in rows:
        print(f"{outcome:8} | {m.id:45} | {m.guarantee}")
    counts = {k: sum(r[1] == k for r in rows) for k in ("killed", "SURVIVED", "ERROR")}
    print(
        f"\n{counts['killed']} killed, {counts['SURVIVED']} survived, {counts['ERROR']} errors "
        f"of {len(rows)} mutants"
    )
    return 0 if counts["killed"] == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
