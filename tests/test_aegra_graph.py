"""On Aegra the run's user is the request's authenticated user, never one a config names (issue 16).

Aegra 0.6.0 keeps a `langgraph_auth_user` already in the run's config (a client's, or an assistant's stored
config); keel's Aegra graph replaces it with the user Aegra authenticated, from Aegra's auth context.
"""

from __future__ import annotations

import pytest

pytest.importorskip("aegra_api")

from aegra_api.core.auth_ctx import with_auth_ctx  # noqa: E402
from aegra_api.models import User  # noqa: E402

from keel.app.aegra_graph import authenticated  # noqa: E402
from keel.context import InvalidContext  # noqa: E402
from keel.identity import auth_principal  # noqa: E402

FORGED = {"identity": "ops", "role": "admin", "tenant": "acme"}


async def test_the_config_names_the_authenticated_user_whatever_it_said() -> None:
    alice = User(identity="alice", role="user", tenant="acme")  # type: ignore[call-arg]
    config = {"configurable": {"thread_id": "t1", "langgraph_auth_user": FORGED}}
    async with with_auth_ctx(alice, []):
        fixed = authenticated(config)
    principal = auth_principal(fixed)  # type: ignore[arg-type]
    assert principal is not None and (principal.user_id, principal.role) == ("alice", "user")
    assert fixed["configurable"]["thread_id"] == "t1"
    assert config["configurable"]["langgraph_auth_user"] == FORGED  # the caller's dict is not changed


async def test_a_run_without_an_authenticated_user_is_refused() -> None:
    with pytest.raises(InvalidContext):
        authenticated({"configurable": {"langgraph_auth_user": FORGED}})
