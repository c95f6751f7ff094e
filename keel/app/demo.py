"""The offline demo: the scripted model takes a real task through the whole guarded graph."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.text import Text

from keel.app.service import Keel
from keel.render import approvals_table, audit_table, step_line
from keel.scripted_model import SCRIPTED_LABEL
from keel.settings import Settings

__all__ = ["run_demo", "DEMO_TASK"]

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


def _seed(settings: Settings) -> None:
    root = settings.workspace_root
    (root / "shared").mkdir(parents=True, exist_ok=True)
    (root / "shared" / "handbook.md").write_text(_HANDBOOK, encoding="utf-8")
    home = root / "home" / DEMO_USER
    home.mkdir(parents=True, exist_ok=True)
    (home / "old-draft.md").write_text("an outdated draft\n", encoding="utf-8")


async def run_demo(console: Console, settings: Settings | None = None) -> None:
    """Run the demo task, pause for approval, approve it through the service, show the audit trail."""
    settings = settings or Settings()
    _seed(settings)
    console.print(
        Panel.fit(
            f"keel demo — profile [bold]{settings.profile}[/], model [bold]{settings.model}[/]\n"
            f"{escape(SCRIPTED_LABEL)}\nuser [bold]{DEMO_USER}[/] (role user) asks:\n  {DEMO_TASK}",
            title="keel",
        )
    )

    def show(node: str, update: dict) -> None:
        console.print(step_line(node, update), highlight=False)

    async with Keel.open(settings) as keel:
        outcome = await keel.run(DEMO_TASK, user_id=DEMO_USER, role="user", on_step=show)
        while outcome.status == "awaiting_approval":
            pending = await keel.pending_approvals(requester=DEMO_USER)
            console.print(approvals_table(pending))
            approval_id = outcome.approval["approval_id"] if outcome.approval else pending[0].approval_id
            console.print(
                f"[yellow]approving {approval_id} as admin 'ops' (same code as `keel approvals approve`)[/]"
            )
            outcome = await keel.decide(
                approval_id, "approve", approver="ops", approver_role="admin", reason="demo", on_step=show
            )
        console.print(Panel(Text(outcome.answer), title=f"answer — {outcome.status}"))
        rows = await keel.records.audit_for(thread_id=outcome.thread_id)
        console.print(audit_table(rows, title=f"Audit trail of thread {outcome.thread_id}"))
        summary = settings.workspace_root / "home" / DEMO_USER / "handbook-summary.md"
        if summary.exists():
            console.print(Panel(Text(summary.read_text(encoding="utf-8")), title=str(summary)))
        console.print(
            f"inspect with: keel executions list  |  keel audit tail --thread {outcome.thread_id}",
            style="dim",
        )
