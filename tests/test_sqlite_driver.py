"""The one-hop SQLite adapter (scrm.sqlite_driver) reports what SQLAlchemy's own does: rows,
rowcounts, inserted ids, RETURNING, errors as SQLAlchemy's exceptions, streaming results."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from scrm.db import make_engine
from scrm.sqlite_driver import OneHopCursor


async def test_statements_report_rows_counts_ids_and_errors(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'd.db'}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)"))
            first = await conn.execute(text("INSERT INTO t (v) VALUES ('a')"))
            assert (first.lastrowid, first.rowcount) == (1, 1)
            many = await conn.execute(text("INSERT INTO t (v) VALUES (:v)"), [{"v": "b"}, {"v": "c"}, {"v": "d"}])
            assert many.rowcount == 3
            returned = await conn.execute(text("INSERT INTO t (v) VALUES ('e') RETURNING id, v"))
            assert returned.all() == [(5, "e")]
            updated = await conn.execute(text("UPDATE t SET v = v || '!' WHERE id > :n"), {"n": 2})
            assert updated.rowcount == 3
            rows = (await conn.execute(text("SELECT id, v FROM t ORDER BY id"))).all()
            assert rows == [(1, "a"), (2, "b"), (3, "c!"), (4, "d!"), (5, "e!")]
            streamed = [row async for row in await conn.stream(text("SELECT v FROM t ORDER BY id"))]
            assert [r.v for r in streamed] == ["a", "b", "c!", "d!", "e!"]
        async with engine.connect() as conn:
            cursor = (await conn.get_raw_connection()).cursor()
            assert isinstance(cursor, OneHopCursor)
            with pytest.raises(IntegrityError):
                await conn.execute(text("INSERT INTO t (v) VALUES ('a')"))
            await conn.rollback()
            with pytest.raises(OperationalError):
                await conn.execute(text("SELECT nothing FROM nowhere"))
    finally:
        await engine.dispose()
