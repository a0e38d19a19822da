"""Async database engine and sessions for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

import models  # noqa: F401  registers every table on the metadata
from scrm import sqlite_driver

SessionFactory = async_sessionmaker[AsyncSession]
WRITE_INTENT = "huike_write_intent"


def make_engine(url: str, *, pool_timeout: float = 3.0, echo: bool = False) -> AsyncEngine:
    """Build the async engine; SQLite gets WAL, a busy timeout and foreign keys on every connection."""
    if url.startswith("sqlite"):
        _ensure_sqlite_dir(url)
        # `timeout` is SQLite's busy timeout: how long a writer queues behind another before failing.
        engine = create_async_engine(
            url,
            echo=echo,
            module=sqlite_driver.dbapi(),  # one thread hop per statement (see scrm.sqlite_driver)
            connect_args={"timeout": pool_timeout, "isolation_level": None},
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    return create_async_engine(
        url,
        echo=echo,
        pool_size=10,
        max_overflow=20,
        pool_timeout=pool_timeout,
        pool_pre_ping=True,
        connect_args={"timeout": pool_timeout, "command_timeout": 30},
    )


def make_session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


@asynccontextmanager
async def transaction(factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """A session inside one write transaction: committed on success, rolled back on error.

    On SQLite the transaction starts with BEGIN IMMEDIATE (a deferred transaction that reads
    first and writes later fails with "database is locked" instead of waiting), and writers of
    this process queue on an asyncio lock rather than in SQLite's busy handler, which sleeps in
    growing steps and collapses throughput under contention. Never nest two on one engine.
    """
    bind = factory.kw.get("bind")
    lock = _sqlite_write_lock(bind) if isinstance(bind, AsyncEngine) else None
    async with contextlib.AsyncExitStack() as stack:
        if lock is not None:
            await stack.enter_async_context(lock)
        session = await stack.enter_async_context(factory())
        await session.connection(execution_options={WRITE_INTENT: True})
        try:
            yield session
            await session.commit()
        except BaseException:
            # Shielded: a task cancelled twice (shutdown) must still end its transaction, or the
            # connection keeps SQLite's write lock and every later writer waits for it.
            await asyncio.shield(session.rollback())
            raise


_write_locks: weakref.WeakKeyDictionary[AsyncEngine, asyncio.Lock] = weakref.WeakKeyDictionary()


def _sqlite_write_lock(engine: AsyncEngine) -> asyncio.Lock | None:
    if engine.dialect.name != "sqlite":
        return None
    lock = _write_locks.get(engine)
    if lock is None:
        lock = _write_locks[engine] = asyncio.Lock()
    return lock


def _sqlite_begin(conn: Any) -> None:
    """pysqlite's own transaction handling is off (isolation_level None): begin explicitly."""
    immediate = conn.get_execution_options().get(WRITE_INTENT)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _ensure_sqlite_dir(url: str) -> None:
    path = url.split(":///", 1)[-1]
    if path and path != ":memory:" and not path.startswith("file:"):
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def dialect_insert(session: AsyncSession) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT (PostgreSQL and SQLite alike)."""
    from sqlalchemy.dialects import postgresql, sqlite

    assert session.bind is not None
    return postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert
