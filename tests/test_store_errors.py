"""One definition of "a store failed" (keel.errors): a saturated pool is a store failure both to the
guards (the call is refused as guard_unavailable) and to the checkpoint path (StoreUnavailable)."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
from psycopg_pool import PoolTimeout
from sqlalchemy import exc as sa_exc

from keel.errors import CHECKPOINT_STORE_ERRORS, POOL_TIMEOUTS
from keel.guards.errors import STORE_ERRORS, failure_of


@pytest.mark.parametrize("error", [PoolTimeout("no connection in 5 s"), sa_exc.TimeoutError("pool")])
def test_a_pool_timeout_is_a_store_failure_everywhere(error: BaseException) -> None:
    assert isinstance(error, POOL_TIMEOUTS)
    assert isinstance(error, STORE_ERRORS) and isinstance(error, CHECKPOINT_STORE_ERRORS)
    assert failure_of(error).reason == "guard_unavailable"


@pytest.mark.parametrize("error", [psycopg.OperationalError("gone"), sqlite3.OperationalError("disk I/O")])
def test_a_checkpointer_driver_error_is_a_checkpoint_store_failure(error: BaseException) -> None:
    assert isinstance(error, CHECKPOINT_STORE_ERRORS)
