"""The offline demo: the scripted model takes a real task through the whole guarded graph."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from keel.app.service import Keel
from keel.policies import ADMIN_ROLE
from keel.render import approvals_table, audit_table, section, show, step_line
from keel.scripted_model import SCRIPTED_LABEL
from keel.settings import Settings

__all__ = ["run_demo", "seed_demo_files", "DEMO_TASK", "DEMO_USER"]

DEMO_USER = "alice"
DEMO_TASK = (
    "summarize shared/handbook.md into ~/handbook-summary.md; "
    "then write shared/handbook.md: (edited by the agent); "
    "then delete ~/old-draft.md"
)
_HANDBOOK = """# Team handbook
## Deploys happen on Tuesdays
## Every change needs a review
## On-call rotates weekly
Contact the platform team with questions.
"""


DEMO_FILES = {"shared/handbook.md": _HANDBOOK, f"home/{DEMO_USER}/old-draft.md": "an outdated draft\n"}
"""The files the demo, `keel workspace seed` and `make dev` start from (paths under the workspace root)."""


def seed_demo_files(root: Path) -> list[str]:
    """Write the demo files under the workspace `root` (overwriting them); their relative paths."""
    for relative, text in DEMO_FILES.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(DEMO_FILES)


async def run_demo(console: Console | None, settings: Settings | None = None) -> dict[str, Any]:
    """Run the demo task, pause for approval, approve it through the service, show the audit trail
    (`console` None: show nothing). Returns what happened: the outcome, the approvals, the audit rows."""
    settings = settings or Settings()
    seed_demo_files(settings.workspace_root)
    quiet = console is None
    c = console or Console(quiet=True)
    section(
        c,
        "keel demo",
        f"profile {settings.profile}, model {settings.model}\n{SCRIPTED_LABEL}\n"
        f"user {DEMO_USER} (role user) asks:\n  {DEMO_TASK}",
    )

    def step(node: str, update: dict) -> None:
        c.print(step_line(node, update), highlight=False)

    on_step = None if quiet else step
    decided: list[dict[str, Any]] = []
    async with Keel.open(settings) as keel:
        outcome = await keel.run(DEMO_TASK, user_id=DEMO_USER, role="user", on_step=on_step)
        while outcome.status == "awaiting_approval":
            pending = await keel.pending_approvals(requester=DEMO_USER)
            show(c, approvals_table(pending), titled=True)
            approval_id = outcome.approval["approval_id"] if outcome.approval else pending[0].approval_id
            c.print(
                f"[yellow]approving {approval_id} as admin 'ops' (same code as `keel approvals approve`)[/]",
                highlight=False,
            )
            decided.append({**(outcome.approval or {}), "decision": "approve", "approver": "ops"})
            outcome = await keel.decide(
                approval_id,
                "approve",
                approver="ops",
                approver_role=ADMIN_ROLE,
                reason="demo",
                on_step=on_step,
            )
        section(c, f"answer — {outcome.status}", outcome.answer)
        rows = await keel.records.audit_for(thread_id=outcome.thread_id)
        show(c, audit_table(rows, title=f"Audit trail of thread {outcome.thread_id}"), titled=True)
        summary = settings.workspace_root / "home" / DEMO_USER / "handbook-summary.md"
        written = summary.read_text(encoding="utf-8") if summary.exists() else None
        if written is not None:
            section(c, str(summary), written)
        c.print(
            f"inspect with: keel executions list  |  keel audit tail --thread {outcome.thread_id}",
            style="dim",
            highlight=False,
        )
    return {
        **outcome.as_dict(),
        "approvals": decided,
        "audit": [r.as_dict() for r in rows],
        "summary_file": str(summary) if written is not None else None,
    }
