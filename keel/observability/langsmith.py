"""LangSmith: filterable run metadata and tags, redacted payloads, and a tracer that never holds a run up.

Tracing is off unless `LANGSMITH_TRACING=true` (LangSmith's own switch; `LANGSMITH_ENDPOINT`,
`LANGSMITH_API_KEY` and `LANGSMITH_PROJECT` as usual). When on, keel passes its own `LangChainTracer`
in the run config, over a `Client` whose `hide_inputs`/`hide_outputs`/`hide_metadata` run keel's redaction,
so nothing unredacted is sent; the model manifest (`serialized`) is redacted too. LangChain then does
not add its default, unredacted tracer. Runs are sent by
the client's background thread with short timeouts and one retry; closing waits at most `flush_timeout_s`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import Any

from langchain_core.tracers.langchain import LangChainTracer
from langsmith import Client
from langsmith import utils as ls_utils
from urllib3.util.retry import Retry

from keel.observability.logging import user_hash
from keel.redaction import redact

__all__ = ["LangSmith", "run_metadata", "run_tags", "DEFAULT_ARM"]

DEFAULT_ARM = "default"
"""The rollout arm of a run until rollouts exist (a placeholder the rollout work will fill)."""


def _hide(payload: dict[str, Any]) -> dict[str, Any]:
    return redact(payload)


def run_metadata(
    *, execution_id: str, user_id: str, version: str, tenant: str, arm: str = DEFAULT_ARM
) -> dict[str, Any]:
    """Metadata every run carries (LangSmith filters, LangGraph Server, any callback)."""
    return {
        "keel_execution_id": execution_id,
        "keel_version": version,
        "keel_rollout_arm": arm,
        "keel_user": user_hash(user_id),
        "keel_tenant": tenant,
    }


def run_tags(*, version: str, arm: str = DEFAULT_ARM) -> list[str]:
    """Tags every run carries."""
    return ["keel", f"keel-version:{version}", f"keel-arm:{arm}"]


class _RedactingClient(Client):
    """A LangSmith client that also redacts what hide_* do not cover: the model manifest (`serialized`),
    a run's `events`, and its `error` (a provider's error body, a traceback) on create and on update."""

    def _run_transform(self, run: Any, *args: Any, **kwargs: Any) -> dict:  # type: ignore[override]
        out = super()._run_transform(run, *args, **kwargs)
        for name in ("serialized", "events"):
            if out.get(name):
                out[name] = redact(out[name])
        return out

    def _hide_run_error(self, error: Any) -> Any:
        return redact(super()._hide_run_error(error))


class LangSmith:
    """keel's LangSmith tracer (None from `from_env` when tracing is off)."""

    def __init__(self, client: Client, project: str, *, flush_timeout_s: float = 2.0) -> None:
        self.client = client
        self.project = project
        self.flush_timeout_s = flush_timeout_s
        self.tracer = LangChainTracer(client=client, project_name=project)

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        timeout_s: float = 3.0,
        flush_timeout_s: float = 2.0,
    ) -> LangSmith | None:
        """A tracer when `LANGSMITH_TRACING` (or `LANGCHAIN_TRACING_V2`) is true, else None."""
        env = os.environ if env is None else env
        if not any(env.get(k, "").lower() == "true" for k in ("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2")):
            return None
        endpoint = env.get("LANGSMITH_ENDPOINT") or env.get("LANGCHAIN_ENDPOINT") or None
        key = env.get("LANGSMITH_API_KEY") or env.get("LANGCHAIN_API_KEY") or None
        ms = int(timeout_s * 1000)
        client = _RedactingClient(
            api_url=endpoint,
            api_key=key,
            timeout_ms=(min(ms, 2000), ms),
            retry_config=Retry(total=1, backoff_factor=0.1, allowed_methods=None, raise_on_status=False),
            hide_inputs=_hide,
            hide_outputs=_hide,
            hide_metadata=_hide,
        )
        project = env.get("LANGSMITH_PROJECT") or env.get("LANGCHAIN_PROJECT") or "keel"
        return cls(client, project, flush_timeout_s=flush_timeout_s)

    @staticmethod
    def enabled() -> bool:
        """Whether LangSmith's environment switch is on."""
        return bool(ls_utils.tracing_is_enabled())

    def close(self) -> None:
        """Send what is queued, waiting at most `flush_timeout_s`, then stop the client's threads."""
        with contextlib.suppress(Exception):  # tracing must never fail a shutdown
            self.client.close(timeout=self.flush_timeout_s)
