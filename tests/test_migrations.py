"""Migrations run both ways on the suite's database kind, and agree with the models."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from scrm.db import make_engine
from tests import dbutil


async def _diff(url: str) -> list[object]:
    engine = make_engine(url)

    def compare(conn: sa.Connection) -> list[object]:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, SQLModel.metadata))

    async with engine.connect() as conn:
        diff = await conn.run_sync(compare)
    await engine.dispose()
    return diff


async def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
    await engine.dispose()
    return names


def test_upgrade_downgrade_upgrade_and_no_model_drift(tmp_path: Path) -> None:
    import asyncio

    base = dbutil.test_database_url()
    url = dbutil.create_database(base, tmp_path, label="migr")
    try:
        cfg = dbutil.alembic_config(url)
        command.upgrade(cfg, "head")
        assert {"customer", "message", "outboxmessage"} <= asyncio.run(_tables(url))
        command.downgrade(cfg, "base")
        assert asyncio.run(_tables(url)) <= {"alembic_version"}
        command.upgrade(cfg, "head")
        assert asyncio.run(_diff(url)) == []
    finally:
        dbutil.drop_database(base, url)
