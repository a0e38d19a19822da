"""Fixtures shared by the whole suite: a real database (SQLite or PostgreSQL), real Redis, the app."""

from __future__ import annotations

import gc
import os
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import time_machine
from sqlmodel import SQLModel

from config.settings import Settings
from scrm.db import WRITE_INTENT, SessionFactory, make_engine, make_session_factory
from tests import dbutil

CI = os.environ.get("CI", "").lower() == "true"
REDIS_URL = os.environ.get("HUIKE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# Third-party test data lives beside the repo (../shared/datasets); HUIKE_DATASETS points elsewhere.
DATASETS = Path(os.environ.get("HUIKE_DATASETS", Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"))


# Every test runs on a pinned clock that moves on from one instant, so no result depends on the day the suite
# runs. HUIKE_TEST_NOW moves that instant (`make test-dates`: a month's last minute in Beijing, 春节 2027, a leap
# day). The default is a Monday 10:00 in Beijing, inside service hours.
TEST_NOW = datetime.fromisoformat(os.environ.get("HUIKE_TEST_NOW") or "2026-06-15T10:00:00+08:00")


@pytest.fixture(autouse=True)
def pinned_clock(request: pytest.FixtureRequest) -> Iterator[time_machine.Coordinates | None]:
    """The pinned clock (`pinned_clock.move_to(...)` / `.shift(...)` move it). Tests marked `wallclock` talk to
    `huike run` processes, whose clock a test cannot move: they keep the real one and must not depend on it."""
    if request.node.get_closest_marker("wallclock"):
        yield None
        return
    with time_machine.travel(TEST_NOW, tick=True) as traveller:
        yield traveller


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip when a service is absent on a developer machine; fail in CI (no silent skip)."""
    if _reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if CI:
        pytest.fail(message + " (CI=true: required)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One migrated database for the whole run; tests empty it after use (`db` fixture)."""
    base = dbutil.test_database_url()
    if base.startswith("postgresql"):
        require_service("PostgreSQL", "127.0.0.1", 5432)
    url = dbutil.create_database(base, tmp_path_factory.mktemp("db"))
    dbutil.migrate(url)
    yield url
    dbutil.drop_database(base, url)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[SessionFactory]:
    """Session factory on the test database; every table is emptied after the test."""
    engine = make_engine(database_url, pool_timeout=30)
    yield make_session_factory(engine)
    try:
        await _empty_tables(engine, database_url)
    except sa.exc.OperationalError:  # a connection the test's app leaked still holds SQLite's lock
        gc.collect()  # unreferenced connections close when collected
        await _empty_tables(engine, database_url)
    await engine.dispose()


async def _empty_tables(engine: Any, database_url: str) -> None:
    async with engine.connect() as conn:
        await (await conn.execution_options(**{WRITE_INTENT: True})).begin()  # BEGIN IMMEDIATE on SQLite
        for stmt in dbutil.truncate_sql(database_url, list(SQLModel.metadata.sorted_tables)):
            await conn.execute(sa.text(stmt))
        await conn.commit()


@pytest.fixture
def redis_url() -> str:
    require_service("Redis", "127.0.0.1", 6379)
    return REDIS_URL


@pytest.fixture
def datasets() -> Path:
    if not DATASETS.is_dir():
        pytest.skip(f"shared datasets not found at {DATASETS}")
    return DATASETS


# One NLU model file for the whole run: apps with the same FAQ load it instead of retraining.
SHARED_NLU_MODEL = Path(tempfile.mkdtemp(prefix="huike-test-nlu-")) / "nlu-model.pkl"


def make_settings(database_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "nlu_model_path": SHARED_NLU_MODEL,
        "db_pool_timeout": 10.0,  # generous: a loaded CI machine must not turn slow writes into 503s
        "env": "test",
        "database_url": database_url,
        "data_dir": tmp_path,
        "redis_namespace": f"huike-test-{uuid.uuid4().hex[:8]}",
        "log_json": True,
        "log_level": "WARNING",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def nlu_model_path() -> Path:
    return SHARED_NLU_MODEL


@pytest.fixture
def settings(database_url: str, tmp_path: Path, db: SessionFactory, nlu_model_path: Path) -> Settings:
    """Test settings on the shared test database (emptied after the test by `db`)."""
    return make_settings(database_url, tmp_path, nlu_model_path=nlu_model_path)


@pytest.fixture
async def seeded_faq(db: SessionFactory) -> int:
    """The demo FAQ in the test database; returns how many entries."""
    from bot.seed import demo_faq_entries
    from scrm.audit import Actor
    from scrm.db import transaction
    from scrm.faq import upsert_faq_by_question

    entries = demo_faq_entries()
    async with transaction(db) as session:
        for entry in entries:
            await upsert_faq_by_question(session, data=entry, actor=Actor.system("test"))
    return len(entries)


@pytest.fixture
async def client(settings: Settings, seeded_faq: int, aiohttp_client: Any) -> Any:
    """A real Huike app on a loopback port with the demo FAQ, as an aiohttp test client."""
    from bot.app import create_app

    return await aiohttp_client(create_app(settings))


async def login_as(client: Any, role: str, *, username: str | None = None) -> dict[str, str]:
    """Create a staff user with `role`, sign in on `client`; returns headers carrying the CSRF token."""
    from bot.keys import db_key
    from models import UserCreate
    from scrm.audit import Actor
    from scrm.db import transaction
    from scrm.users import create_user

    username = username or f"{role}-{uuid.uuid4().hex[:6]}"
    async with transaction(client.app[db_key]) as session:
        await create_user(
            session, data=UserCreate(username=username, password="secret-pass-1", role=role), actor=Actor.system()
        )
    resp = await client.post("/api/v1/auth/login", json={"username": username, "password": "secret-pass-1"})
    assert resp.status == 200, await resp.text()
    return {"X-CSRF-Token": (await resp.json())["csrf_token"]}
