"""LangSmith: filterable run metadata and tags, redacted payloads, and a tracer that never holds a run up.

Tracing is off unless `LANGSMITH_TRACING=true` (LangSmith's own switch; `LANGSMITH_ENDPOINT`,
`LANGSMITH_API_KEY` and `LANGSMITH_PROJECT` as usual). When on, keel passes its own `LangChainTracer`
in the run config, over a `Client` whose `hide_inputs`/`hide_outputs`/`hide_metadata` run keel's redaction,
so nothing unredacted is sent; the model manifest (`serialized`) is redacted too. LangChain then does
not add its default, unredacted tracer. Runs are sent by
the client's background thread with short timeouts and one retry; closing waits at most `flush_timeout_s`.

The root run of an execution's first invocation has the id `root_run_id(execution_id)`: the execution id
(a UUID) itself. The library sets it in the run config (`keel.observability.telemetry`); on LangGraph Server
a new execution takes the server's run id, which the server gives its root run (`keel.server.auth`). So
feedback given later on the execution reaches LangSmith as feedback on that run (`LangSmith.send_feedback`)
with no lookup and no column to keep. Later invocations of the same execution (a resume after an approval)
are runs of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import Mapping
from typing import Any

from langchain_core.tracers.langchain import LangChainTracer
from langsmith import Client
from langsmith import utils as ls_utils
from urllib3.util.retry import Retry

from keel.observability.logging import user_hash
from keel.redaction import redact

__all__ = ["LangSmith", "run_metadata", "run_tags", "root_run_id", "DEFAULT_ARM", "FEEDBACK_KEY"]

log = logging.getLogger(__name__)

FEEDBACK_KEY = "user_score"
"""The LangSmith feedback key users' scores are sent under."""
_RUN_NAMESPACE = uuid.UUID("5b0c7c7e-3f1e-4d52-9a57-6b1e0f4a2d11")

DEFAULT_ARM = "default"
"""The arm of a run without a rollout (with one: the arm's name, keel.rollout; the metadata's
`keel_rollout_arm` and the tag `keel-arm:<arm>`)."""


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


def root_run_id(execution_id: str) -> uuid.UUID:
    """The LangSmith id of the root run of an execution's first invocation: the execution id itself when it
    is a UUID (keel's are: uuid4 in the library, the server's run id on LangGraph Server), else a UUID5 of
    it (an id a client chose)."""
    try:
        return uuid.UUID(execution_id)
    except ValueError:
        return uuid.uuid5(_RUN_NAMESPACE, execution_id)


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
        self._session_id: Any = None

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

    async def send_feedback(self, execution_id: str, score: float, comment: str | None) -> bool:
        """Send a user's score (and the comment, already redacted) as feedback `user_score` on the
        execution's root run (its trace), in the tracer's project. Never raises: a failure or a wait past
        `flush_timeout_s` is a warning and False (the feedback is stored in the records either way; a call
        still running finishes on its own thread)."""
        run_id = root_run_id(execution_id)

        def send() -> None:
            self.client.create_feedback(
                run_id=run_id,
                trace_id=run_id,
                session_id=self._project_id(),
                key=FEEDBACK_KEY,
                score=score,
                comment=comment,
            )

        try:
            async with asyncio.timeout(self.flush_timeout_s):
                await asyncio.to_thread(send)
        except Exception as exc:  # noqa: BLE001 - LangSmith failing never fails the feedback
            why = f"no answer within {self.flush_timeout_s:g}s" if isinstance(exc, TimeoutError) else exc
            log.warning("feedback on execution %s not sent to LangSmith: %s", execution_id, why)
            return False
        return True

    def _project_id(self) -> Any:
        """The id of the tracer's project (LangSmith asks for it with run feedback), looked up once; None
        when the lookup fails (the feedback is then sent without it, as older deployments take it)."""
        if self._session_id is None:
            with contextlib.suppress(Exception):
                self._session_id = self.client.read_project(project_name=self.project).id
        return self._session_id

    def close(self) -> None:
        """Send what is queued, waiting at most `flush_timeout_s`, then stop the client's threads."""
        with contextlib.suppress(Exception):  # tracing must never fail a shutdown
            self.client.close(timeout=self.flush_timeout_s)
