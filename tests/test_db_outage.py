"""The database goes away mid-service: clients get a fast 503 JSON error, and service resumes when it returns."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from bot.app import create_app
from tests.conftest import make_settings
from tests.fakes.tcp_proxy import TcpProxy


async def ask(client: Any, msg_id: str) -> Any:
    return await client.post("/api/v1/webchat/messages", json={"text": "多久发货", "client_msg_id": msg_id})


async def assert_fast_503(client: Any, msg_id: str) -> None:
    started = time.monotonic()
    resp = await ask(client, msg_id)
    assert resp.status == 503
    body = await resp.json()
    assert body["code"] == "unavailable" and "Traceback" not in str(body)
    assert time.monotonic() - started < 10  # fails fast, does not hang


async def test_database_unavailable_gives_503_then_recovers(
    database_url: str, tmp_path: Path, nlu_model_path: Path, seeded_faq: int, aiohttp_client: Any
) -> None:
    if database_url.startswith("sqlite"):
        await _sqlite_outage(database_url, tmp_path, nlu_model_path, aiohttp_client)
    else:
        await _postgres_outage(database_url, tmp_path, nlu_model_path, aiohttp_client)


async def _sqlite_outage(database_url: str, tmp_path: Path, model: Path, aiohttp_client: Any) -> None:
    settings = make_settings(database_url, tmp_path, nlu_model_path=model, db_pool_timeout=1.0)
    client = await aiohttp_client(create_app(settings))
    assert (await ask(client, "before")).status == 201
    # Another process holds the database exclusively (a backup, a stuck writer …).
    blocker = sqlite3.connect(make_url(database_url).database, timeout=0, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        await assert_fast_503(client, "during")
        assert (await client.get("/readyz")).status in (200, 503)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    resp = await ask(client, "after")
    assert resp.status == 201 and (await resp.json())["replies"]


async def _postgres_outage(database_url: str, tmp_path: Path, model: Path, aiohttp_client: Any) -> None:
    url = make_url(database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    settings = make_settings(proxied, tmp_path, nlu_model_path=model, db_pool_timeout=1.0)
    client = await aiohttp_client(create_app(settings))
    try:
        assert (await ask(client, "before")).status == 201
        await proxy.cut()
        await assert_fast_503(client, "during")
        assert (await client.get("/readyz")).status == 503
        await proxy.restore()
        for _ in range(20):  # the pool notices dead connections (pre-ping) and reconnects
            resp = await ask(client, "after")
            if resp.status == 201:
                break
            await asyncio.sleep(0.2)
        assert resp.status == 201 and (await resp.json())["replies"]
        assert (await client.get("/readyz")).status == 200
    finally:
        await proxy.close()
