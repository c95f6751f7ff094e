"""The `keel` command line. Each command group lives in its own module and is registered here."""

from __future__ import annotations

import os

import typer

from keel.cli import health as _health
from keel.cli import metrics as _metrics
from keel.cli import run as _run
from keel.cli.approvals import approvals_app
from keel.cli.audit import audit_app, executions_app
from keel.cli.budget import budget_app
from keel.cli.memory import memory_app
from keel.cli.policy import policy_app

__all__ = ["app", "main"]

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="keel: a guarded runtime for tool-using agents."
)
_run.register(app)
_health.register(app)
_metrics.register(app)
app.add_typer(approvals_app, name="approvals")
app.add_typer(audit_app, name="audit")
app.add_typer(budget_app, name="budget")
app.add_typer(executions_app, name="executions")
app.add_typer(policy_app, name="policy")
app.add_typer(memory_app, name="memory")


def main() -> None:
    """Console-script entry point. Log lines (stderr) default to warnings here: the terminal is for output."""
    os.environ.setdefault("KEEL_LOG_LEVEL", "warning")
    app()
