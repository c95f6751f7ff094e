"""`keel metrics`: figures from the records and the hot state, or a running server's Prometheus text.

Without `--url` the figures are read where they are kept (executions in the records, breakers in the
hot state), so they cover every process that ran, not just this one. With `--url` the server's
`/keel/metrics` route is read with an API key (it answers 401 without one).
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import typer

from keel.cli._common import EXIT_UNAVAILABLE, JsonOpt, call, fail, out, print_json

__all__ = ["register", "collect_figures"]


def register(app: typer.Typer) -> None:
    """Add `keel metrics` to the root app."""
    app.command()(metrics)


def metrics(
    window: str = typer.Option("24h", "--window", help="How far back the figures go: 90s, 60m, 24h, 7d."),
    url: str | None = typer.Option(
        None, "--url", help="Read a running server's metrics instead (http://host:2024[/keel/metrics])."
    ),
    api_key: str | None = typer.Option(
        None,
        "--api-key",
        envvar="KEEL_API_KEY",
        help="The key the server wants with --url (sent as x-api-key; or KEEL_API_KEY).",
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Runs, success rate, durations, tokens, cost, tool calls and failures, pending approvals and
    breakers not closed, from the records and the hot state; with --url, a server's Prometheus text
    (--json: its samples as JSON)."""
    if url is not None:
        _remote(url, api_key, as_json)
        return
    from keel.observability.health import parse_window

    try:
        span = parse_window(window)
    except ValueError as exc:
        fail(str(exc))
    figures = call(lambda: _figures(span))
    if as_json:
        print_json(out, figures)
    else:
        for label, value in _lines(figures, window):
            out.out(f"{label:<20} {value}", highlight=False)


async def _figures(span: timedelta) -> dict[str, Any]:
    from keel.app.backends import Backends

    b = Backends.from_settings()
    try:
        await b.ready()
        return await collect_figures(b, span)
    finally:
        await b.aclose()


async def collect_figures(b: Any, span: timedelta) -> dict[str, Any]:
    """The figures of `keel metrics` over the backends `b` (keel.app.backends.Backends) and the window."""
    from keel.observability.health import HealthThresholds, compute_health

    report = await compute_health(
        b.records, window=span, thresholds=HealthThresholds.from_settings(b.settings)
    )
    pending = await b.records.list_approvals(status="pending", limit=10_000)
    figures = report.as_dict()
    figures["total_tokens"] = report.input_tokens + report.output_tokens
    figures["pending_approvals"] = len(pending)
    figures["breakers"], figures["breakers_error"] = await _breakers(b)
    return figures


async def _breakers(b: Any) -> tuple[dict[str, str], str | None]:
    """Breakers that are not closed (open or half-open), by name; or why the hot state could not say."""
    from keel.guards import Guards

    guards = b.guards
    if not isinstance(guards, Guards):  # an unguarded baseline has no breakers
        return {}, None
    names = [f"model:{m}" for m in guards.models] + [f"tool:{t}" for t in b.registry.names()]
    found: dict[str, str] = {}
    try:
        for name in names:
            state = await guards.breakers.state(name, guards.breaker)
            if state != "closed":
                found[name] = state
    except Exception as exc:  # noqa: BLE001 - the records' figures still stand; say what is missing
        from keel.errors import describe

        return found, f"the hot state is unavailable: {describe(exc)}"
    return found, None


def _lines(f: dict[str, Any], window: str) -> list[tuple[str, str]]:
    pct = lambda v: "-" if v is None else f"{v:.1%}"  # noqa: E731
    sec = lambda v: "-" if v is None else f"{v:.2f} s"  # noqa: E731
    breakers = ", ".join(f"{n} {s}" for n, s in sorted(f["breakers"].items())) or "all closed"
    return [
        ("window", f"last {window} (since {f['since']})"),
        ("status", f["status"] + (f" ({'; '.join(f['reasons'])})" if f["reasons"] else "")),
        (
            "runs",
            f"{f['total_executions']} ({f['finished_executions']} finished, {f['succeeded']} succeeded)",
        ),
        ("success rate", pct(f["success_rate"])),
        ("avg duration", sec(f["avg_duration_s"])),
        ("p95 duration", sec(f["p95_duration_s"])),
        ("tokens", f"{f['total_tokens']} ({f['input_tokens']} in, {f['output_tokens']} out)"),
        ("cost", f"${f['cost_usd']}"),
        ("tool calls", str(f["tool_calls"])),
        ("tool failure rate", f"{pct(f['tool_failure_rate'])} ({f['tool_failures']}/{f['tool_calls']})"),
        ("pending approvals", str(f["pending_approvals"])),
        ("breakers", f["breakers_error"] or breakers),
    ]


def _remote(url: str, api_key: str | None, as_json: bool) -> None:
    import httpx

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        fail(f"--url {url!r} is not an http(s) URL")
    if parts.path in ("", "/"):
        url = url.rstrip("/") + "/keel/metrics"
    key = api_key or os.environ.get("KEEL_API_KEY")
    if not key:
        fail("--url needs --api-key (or KEEL_API_KEY): the server's /keel/metrics answers 401 without one")
    try:
        response = httpx.get(url, headers={"x-api-key": key}, timeout=5.0)
    except httpx.HTTPError as exc:
        fail(f"cannot read metrics from {url}: {exc}", EXIT_UNAVAILABLE)
    if response.status_code in (401, 403):
        fail(f"{url} refused the API key (HTTP {response.status_code})")
    if response.status_code != 200:
        fail(f"cannot read metrics from {url}: HTTP {response.status_code}", EXIT_UNAVAILABLE)
    if not as_json:
        typer.echo(response.text, nl=False)
        return
    from prometheus_client.parser import text_string_to_metric_families

    samples = [
        {"name": s.name, "labels": dict(s.labels), "value": s.value}
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    ]
    print_json(out, {"url": url, "samples": samples})
