"""Reliability rig: real `huike run` processes on a fresh PostgreSQL database, real Redis, fake WeChat.

These tests need PostgreSQL and Redis (several workers are refused on SQLite): on the SQLite pass
they are skipped with that reason; on the PostgreSQL pass a missing server fails under CI=true.
The database is this module's own (created per run), so tests select their rows by their own ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from config.settings import Settings
from models import Message, OutboxMessage
from scrm.db import SessionFactory, make_engine, make_session_factory
from tests import dbutil
from tests.conftest import REDIS_URL, require_service
from tests.fakes.tcp_proxy import TcpProxy
from tests.reliability.harness import FlakyWeChat, Huike, LoopThread, base_env


def _services_or_skip() -> None:
    if not dbutil.test_database_url().startswith("postgresql"):
        pytest.skip("reliability tests run several workers: PostgreSQL + Redis pass only (HUIKE_TEST_DATABASE_URL)")
    require_service("PostgreSQL", "127.0.0.1", 5432)
    require_service("Redis", "127.0.0.1", 6379)


@pytest.fixture(autouse=True)
def postgres_and_redis(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("embedded") is None:  # `embedded` tests check the SQLite refusal
        _services_or_skip()


@pytest.fixture(scope="session")
def rel_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh migrated PostgreSQL database with the demo FAQ, for the processes of this package."""
    _services_or_skip()
    base = dbutil.test_database_url()
    url = dbutil.create_database(base, tmp_path_factory.mktemp("reldb"), label="rel")
    dbutil.migrate(url)
    from bot.seed import seed_demo

    asyncio.run(seed_demo(Settings(_env_file=None, database_url=url)))  # type: ignore[call-arg]
    yield url
    dbutil.drop_database(base, url)


@pytest.fixture(scope="session")
def loop_thread() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture(scope="session")
def flaky(loop_thread: LoopThread) -> Iterator[FlakyWeChat]:
    """The fake WeChat API in its own loop; tests set `failure_rate`."""
    fake = FlakyWeChat()
    loop_thread.run(fake.start())
    yield fake
    loop_thread.run(fake.stop())


Start = Callable[..., Huike]


@pytest.fixture(scope="session")
def start_huike(
    rel_database: str, flaky: FlakyWeChat, nlu_model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Start]:
    """Start `huike run` on the package database, Redis and the fake WeChat; all stopped at the end."""
    started: list[Huike] = []
    log_dir = tmp_path_factory.mktemp("huike-logs")

    def start(*, workers: int = 1, database: str | None = None, redis: str | None = None, **env: Any) -> Huike:
        values = base_env(database or rel_database, redis or REDIS_URL, log_dir, nlu_model_path,
                          HUIKE_WECHAT_APP_ID=flaky.app_id, HUIKE_WECHAT_APP_SECRET=flaky.secret,
                          HUIKE_WECHAT_API_BASE=flaky.url, **env)  # fmt: skip
        huike = Huike(values, workers=workers, log_dir=log_dir)
        started.append(huike)
        return huike.start()

    yield start
    for huike in started:
        with contextlib.suppress(Exception):
            huike.stop()


@pytest.fixture
async def rel_db(rel_database: str) -> Any:
    engine = make_engine(rel_database)
    yield make_session_factory(engine)
    await engine.dispose()


@pytest.fixture(scope="session")
def pg_proxy(loop_thread: LoopThread) -> Iterator[TcpProxy]:
    """A cuttable TCP proxy in front of PostgreSQL."""
    proxy = TcpProxy("127.0.0.1", 5432)
    loop_thread.run(proxy.start())
    yield proxy
    loop_thread.run(proxy.close())


def via_proxy(url: str, proxy: TcpProxy) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(port=proxy.port).render_as_string(hide_password=False)


async def inbound_of(db: SessionFactory, external_ids: list[str]) -> list[Message]:
    """Inbound messages of the customers with these channel ids (openids / visitor ids)."""
    from models import ChannelIdentity

    async with db() as session:
        customer_ids = select(ChannelIdentity.customer_id).where(col(ChannelIdentity.external_id).in_(external_ids))
        rows = await session.exec(
            select(Message).where(Message.direction == "in", col(Message.customer_id).in_(customer_ids))
        )
        return list(rows.all())


async def replies_to(db: SessionFactory, inbound_ids: list[int]) -> dict[int, list[Message]]:
    async with db() as session:
        rows = (await session.exec(select(Message).where(col(Message.reply_to_id).in_(inbound_ids)))).all()
    out: dict[int, list[Message]] = {i: [] for i in inbound_ids}
    for row in rows:
        assert row.reply_to_id is not None
        out[row.reply_to_id].append(row)
    return out


async def outbox_for(db: SessionFactory, message_ids: list[int]) -> list[OutboxMessage]:
    async with db() as session:
        rows = await session.exec(select(OutboxMessage).where(col(OutboxMessage.message_id).in_(message_ids)))
        return list(rows.all())


def new_id(prefix: str = "o") -> str:
    return f"{prefix}{uuid.uuid4().hex[:20]}"
