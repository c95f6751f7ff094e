"""Shared fixtures: both storage profiles, a fresh PostgreSQL database, a keel with a scripted fake model."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from keel.app.service import Keel
from keel.records import Records
from keel.settings import Settings
from keel.testing.fake_model import FakeChatModel
from keel.testing.openai_server import FakeOpenAIServer
from keel.tools.registry import ToolRegistry

PG_ADMIN = os.environ.get("KEEL_TEST_PG_ADMIN", "postgresql://127.0.0.1:5432/postgres")

for _name in [k for k in os.environ if k.startswith("KEEL_")]:
    if _name != "KEEL_TEST_PG_ADMIN":
        os.environ.pop(_name)
os.environ.setdefault("LANGSMITH_TRACING", "false")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


@pytest.fixture(scope="session")
def pg_url() -> str:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    name = f"keel_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def migrated_records(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An embedded records database migrated to head once per session, and nothing else in it: each
    embedded home starts as a copy (Alembic's upgrade of a new file is tested in test_cold_start.py)."""
    home = tmp_path_factory.mktemp("migrated-records")
    records = Records.from_url(f"sqlite+aiosqlite:///{home / 'records.sqlite'}")

    async def migrate() -> None:
        try:
            await records.setup()
        finally:
            await records.close()

    asyncio.run(migrate())
    return home / "records.sqlite"


@pytest.fixture(params=["embedded", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings for one profile, with a private home and workspace."""
    if request.param == "postgres":
        return Settings(
            profile="postgres",
            database_url=request.getfixturevalue("pg_url"),
            home=tmp_path,
            redis_prefix=f"keeltest:{uuid.uuid4().hex[:10]}:",  # breakers/rate windows private to the test
        )
    shutil.copyfile(request.getfixturevalue("migrated_records"), tmp_path / "records.sqlite")
    return Settings(home=tmp_path)


@pytest.fixture
def workspace(settings: Settings) -> Path:
    """The workspace, seeded with a shared handbook and a draft in alice's home."""
    root = settings.workspace_root
    (root / "shared").mkdir(parents=True)
    (root / "shared" / "handbook.md").write_text("# Handbook\n## Deploy on Tuesdays\n", encoding="utf-8")
    (root / "home" / "alice").mkdir(parents=True)
    (root / "home" / "alice" / "draft.md").write_text("old draft\n", encoding="utf-8")
    (root / "home" / "alice" / "keep.md").write_text("keep me\n", encoding="utf-8")
    (root / "home" / "bob").mkdir(parents=True)
    (root / "home" / "bob" / "secret.md").write_text("bob's\n", encoding="utf-8")
    return root


KeelFactory = Callable[..., AbstractAsyncContextManager[Keel]]


@pytest.fixture
def make_keel(settings: Settings, workspace: Path) -> KeelFactory:
    """`async with make_keel(turns, registry=..., guards=..., **settings_overrides) as keel` with a
    FakeChatModel (`guards`: extra keel.guards.Guard objects, checked before every model call)."""

    @asynccontextmanager
    async def factory(
        turns: list[Any],
        *,
        registry: ToolRegistry | None = None,
        guards: Sequence[Any] = (),
        **overrides: Any,
    ) -> AsyncIterator[Keel]:
        s = settings.model_copy(update=overrides) if overrides else settings
        model = FakeChatModel(turns)
        async with Keel.open(
            s, model=model, model_name="fake-model", registry=registry, guards=guards
        ) as keel:
            keel.fake_model = model  # type: ignore[attr-defined]
            yield keel

    return factory


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    """A local OpenAI-compatible server for the real ChatOpenAI client (faults can be queued)."""
    with FakeOpenAIServer(model="fake-model") as srv:
        yield srv
