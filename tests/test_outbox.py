"""The outbox records what a send did even when the database is briefly out of reach, so a message
handed to WeChat is never sent a second time when its lease runs out."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import select

from bot.outbox import Outbox
from models import Conversation, Customer, OutboxMessage, OutboxStatus, utcnow
from scrm.db import SessionFactory, make_session_factory, transaction
from scrm.interactions import record_outbound


async def queued_reply(db: SessionFactory) -> int:
    async with transaction(db) as s:
        customer = Customer()
        s.add(customer)
        await s.flush()
        assert customer.id is not None
        conversation = Conversation(customer_id=customer.id, channel="wechat_oa", app_id="default", external_id="o-1")
        s.add(conversation)
        await s.flush()
        _message, row = await record_outbound(s, conversation=conversation, text="您好，已为您查询")
    assert row.id is not None
    return row.id


async def test_outcome_of_a_send_survives_an_exhausted_pool(database_url: str, db: SessionFactory) -> None:
    row_id = await queued_reply(db)
    engine = create_async_engine(database_url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    sent: list[int] = []
    hogs: list[asyncio.Task[Any]] = []

    async def hold_the_only_connection(seconds: float) -> None:
        async with engine.connect():
            await asyncio.sleep(seconds)

    async def deliver(row: OutboxMessage) -> str:
        sent.append(row.id or 0)  # WeChat has it now
        hogs.append(asyncio.create_task(hold_the_only_connection(0.8)))  # ... and the pool is busy for 0.8 s
        await asyncio.sleep(0.05)
        return "api"

    outbox = Outbox(make_session_factory(engine))
    outbox.register("wechat_oa", deliver)
    try:
        with contextlib.suppress(Exception):  # without retries the outcome write fails here
            await outbox.run_once()
        await asyncio.gather(*hogs)
        async with transaction(db) as s:  # the lease runs out: the row is up for grabs again if not recorded
            await s.exec(update(OutboxMessage).values(locked_until=utcnow()))  # type: ignore[call-overload]
        await outbox.run_once()
    finally:
        await engine.dispose()
    async with db() as s:
        row = (await s.exec(select(OutboxMessage).where(OutboxMessage.id == row_id))).one()
    assert sent == [row_id]  # handed over once
    assert (row.status, row.attempts, row.delivered_via) == (OutboxStatus.SENT, 1, "api")
