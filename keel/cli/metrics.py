"""`keel metrics`: keel's metrics in the Prometheus text format (this process's, or a server's)."""

from __future__ import annotations

import typer

from keel.cli._common import fail

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add `keel metrics` to the root app."""
    app.command()(metrics)


def metrics(
    url: str | None = typer.Option(None, "--url", help="Fetch a running server's /metrics instead."),
) -> None:
    """Print the Prometheus metrics (what the server's /metrics route serves)."""
    if url is None:
        from keel.observability.metrics import prometheus_text

        typer.echo(prometheus_text(), nl=False)
        return
    import httpx

    try:
        response = httpx.get(url, timeout=5.0)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        fail(f"cannot read metrics from {url}: {exc}")
    typer.echo(response.text, nl=False)
