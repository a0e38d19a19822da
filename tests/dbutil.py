"""Test databases: one fresh database per pytest run (so parallel runs never collide), migrated once."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def test_database_url() -> str:
    """The URL the suite runs on: HUIKE_TEST_DATABASE_URL, or SQLite when unset."""
    return os.environ.get("HUIKE_TEST_DATABASE_URL", "sqlite")


def alembic_config(url: str) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "alembic"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


async def pg_admin(url: str, sql: str) -> None:
    import asyncpg

    u = make_url(url)
    conn = await asyncpg.connect(
        host=u.host, port=u.port or 5432, user=u.username, password=u.password, database=u.database, timeout=5
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_database(base: str, tmp_dir: Path, label: str = "run") -> str:
    """A new empty database for this run: a file for SQLite, a fresh database on PostgreSQL."""
    name = f"huike_{label}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    if base == "sqlite" or base.startswith("sqlite"):
        return f"sqlite+aiosqlite:///{tmp_dir / (name + '.db')}"
    asyncio.run(pg_admin(base, f'CREATE DATABASE "{name}"'))
    return make_url(base).set(database=name).render_as_string(hide_password=False)


def drop_database(base: str, url: str) -> None:
    if url.startswith("sqlite"):
        return
    name = make_url(url).database
    asyncio.run(pg_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def truncate_sql(url: str, tables: list[sa.Table]) -> list[str]:
    """Statements that empty every table (children first), resetting ids."""
    if url.startswith("postgresql"):
        names = ", ".join(f'"{t.name}"' for t in tables)
        return [f"TRUNCATE {names} RESTART IDENTITY CASCADE"] if names else []
    stmts = [f'DELETE FROM "{t.name}"' for t in reversed(tables)]
    # Tables without AUTOINCREMENT reuse max(rowid)+1, so ids restart once emptied; sqlite_sequence
    # exists only when some table uses AUTOINCREMENT.
    return stmts
