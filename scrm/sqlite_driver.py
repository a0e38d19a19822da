"""SQLAlchemy's aiosqlite adapter, with one hop to the database thread per statement instead of four.

aiosqlite runs every call on its connection's thread; SQLAlchemy's adapter makes four of them for
each statement (open a cursor, execute, fetch, close), each a queue put, a thread wake-up and a
loop wake-up. Profiled under load these hand-offs were most of a web-chat turn's database cost
(a point SELECT: ~290 µs of CPU through the adapter, ~60 µs through plain sqlite3). Here the
cursor's whole life runs as one function on aiosqlite's own thread, where the sqlite3 connection
lives; transactions, errors and results are the adapter's own. Server-side cursors keep the
stock path (nothing in Huike streams from SQLite).
"""

from __future__ import annotations

import sqlite3
from collections import deque
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)

Outcome = tuple[Any, list[Any], int | None, int]  # description, rows, lastrowid, rowcount


def _run(conn: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> Outcome:
    """On aiosqlite's thread: the statement from cursor to close."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
            return None, [], cursor.lastrowid, cursor.rowcount
        cursor.execute(operation, () if parameters is None else parameters)
        if cursor.description:  # rows (SELECT, RETURNING): the adapter reports no rowcount then
            return cursor.description, cursor.fetchall(), -1, -1
        return None, [], cursor.lastrowid, cursor.rowcount
    finally:
        cursor.close()


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    __slots__ = ()

    def _one_hop(self, operation: Any, parameters: Any, many: bool) -> None:
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        try:
            outcome: Outcome = self.await_(connection._execute(_run, connection._conn, operation, parameters, many))
        except Exception as error:
            self._adapt_connection._handle_exception(error)
        self.description, rows, lastrowid, self.rowcount = outcome
        self.lastrowid = lastrowid  # type: ignore[assignment]  # sqlite3's, as the stock adapter passes it on
        self._rows = deque(rows)

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        self._one_hop(operation, parameters, many=False)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        self._one_hop(operation, seq_of_parameters, many=True)


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()

    def cursor(self, server_side: bool = False) -> AsyncAdapt_aiosqlite_cursor:
        return super().cursor(server_side) if server_side else OneHopCursor(self)


class OneHopDbapi(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        adapted = super().connect(*arg, **kw)
        return OneHopConnection(self, adapted._connection)


def dbapi() -> OneHopDbapi:
    """The DBAPI module for `create_async_engine(..., module=dbapi())` on an aiosqlite URL."""
    return OneHopDbapi(aiosqlite, sqlite3)
