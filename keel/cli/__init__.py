"""The `keel` command line. Each command group lives in its own module and is registered here."""

from __future__ import annotations

import os

import typer

from keel.cli import feedback as _feedback
from keel.cli import health as _health
from keel.cli import init as _init
from keel.cli import metrics as _metrics
from keel.cli import run as _run
from keel.cli._common import new_app
from keel.cli._group import KeelGroup
from keel.cli.approvals import approvals_app
from keel.cli.audit import audit_app, executions_app
from keel.cli.budget import budget_app
from keel.cli.cache import cache_app
from keel.cli.memory import memory_app
from keel.cli.policy import policy_app
from keel.cli.report import report_app
from keel.cli.rollout import rollout_app
from keel.cli.tools import tools_app
from keel.cli.versions import versions_app
from keel.cli.workspace import workspace_app

__all__ = ["app", "main"]

app = new_app(
    "keel: a guarded runtime for tool-using agents.\n\n"
    "Every command takes --json (one JSON document on stdout). In a pipe, tables become tab-separated "
    "lines with a header row and whole ids. Errors are one line on stderr. Exit codes: 0 ok, 1 error, "
    "2 usage error, 3 paused for approval, 4 stopped by a guard or limit, 5 a dependency unavailable, "
    "6 every tool call refused.",
    cls=KeelGroup,
)
_run.register(app)
_init.register(app)
_health.register(app)
_metrics.register(app)
_feedback.register(app)
app.add_typer(approvals_app, name="approvals")
app.add_typer(audit_app, name="audit")
app.add_typer(budget_app, name="budget")
app.add_typer(cache_app, name="cache")
app.add_typer(executions_app, name="executions")
app.add_typer(policy_app, name="policy")
app.add_typer(rollout_app, name="rollout")
app.add_typer(report_app, name="report")
app.add_typer(tools_app, name="tools")
app.add_typer(versions_app, name="versions")
app.add_typer(memory_app, name="memory")
app.add_typer(workspace_app, name="workspace")

_VERBOSITY = ("error", "warning", "info", "debug")


@app.callback()
def _root(
    ctx: typer.Context,
    verbose: int = typer.Option(
        0,
        "-v",
        "--verbose",
        count=True,
        help="Log more on stderr: -v info, -vv debug (default: warning, or KEEL_LOG_LEVEL).",
    ),
    config: str | None = typer.Option(
        None,
        "--config",
        help="The project config for every command (as KEEL_CONFIG; default: ./keel.yaml when present).",
    ),
) -> None:
    """The log level of this command: the more verbose of -v and KEEL_LOG_LEVEL (default warning)."""
    from keel.observability.logging import configure_logging

    if config is not None:
        previous_config = os.environ.get("KEEL_CONFIG")
        os.environ["KEEL_CONFIG"] = config
        ctx.call_on_close(lambda: _restore_env("KEEL_CONFIG", previous_config))

    previous = os.environ.get("KEEL_LOG_LEVEL")
    current = (previous or "warning").lower()
    current = current if current in _VERBOSITY else "warning"  # Settings() reports a bad value itself
    level = max(current, _VERBOSITY[min(verbose, 2) + 1], key=_VERBOSITY.index)
    if level != current:
        # Every Settings() the command builds (backends, memory, records) reads the level from there.
        os.environ["KEEL_LOG_LEVEL"] = level
        ctx.call_on_close(lambda: _restore(previous))
    configure_logging(level)


def _restore(previous: str | None) -> None:
    _restore_env("KEEL_LOG_LEVEL", previous)


def _restore_env(name: str, previous: str | None) -> None:
    if previous is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = previous


def main() -> None:
    """Console-script entry point."""
    app()
