"""Followups: tagging runs shortly after a turn, batched, and survives a failure (care replies: test_api)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import DBAPIError
from sqlmodel import select

from bot.engine.followups import Followups
from models import CustomerTag, Tag
from scrm.audit import Actor
from scrm.db import make_engine, make_session_factory
from scrm.tags import record_events, save_tag_rule
from tests.scrm.conftest import NOW, Factory

ADMIN = Actor(id=None, name="admin", role="admin")
RULE = {"event": {"kind": "intent", "name": "complaint", "count": {"gte": 1}, "within_days": 7}}


async def tagged(db) -> set[int]:
    async with db() as s:
        return set((await s.exec(select(CustomerTag.customer_id).join(Tag).where(Tag.name == "投诉过"))).all())


async def complained(db, *customers) -> None:
    async with db() as s, s.begin():
        await save_tag_rule(s, name="投诉过", tag_name="投诉过", actor=ADMIN, conditions=RULE)
        for c in customers:
            await record_events(s, customer_id=c.id, events={"intent": "complaint"}, at=NOW)


async def test_noted_customers_are_tagged_by_the_loop_in_one_batch(db, make: Factory) -> None:
    a, b, quiet = [await make.customer(name=n) for n in ("甲", "乙", "丙")]
    await complained(db, a, b, quiet)
    followups = Followups(db, delay=0.05, clock=lambda: NOW)
    await followups.start()
    try:
        followups.note(a.id)
        followups.note(b.id)
        for _ in range(100):
            if await tagged(db):
                break
            await asyncio.sleep(0.05)
    finally:
        await followups.close()
    assert await tagged(db) == {a.id, b.id}  # `quiet` was never noted: tagged only by the scheduled run


async def test_a_failed_batch_stays_pending_and_close_flushes_it(db, make: Factory, tmp_path) -> None:
    a = await make.customer(name="甲")
    await complained(db, a)
    unopenable = make_engine(f"sqlite+aiosqlite:///{tmp_path}")  # a directory, not a database file
    broken = Followups(make_session_factory(unopenable), clock=lambda: NOW)
    broken.note(a.id)
    with pytest.raises(DBAPIError):
        await broken.flush()
    await unopenable.dispose()
    assert broken._pending == {a.id}
    healed = Followups(db, clock=lambda: NOW)
    healed._pending = broken._pending  # the same customers, the database back
    await healed.close()  # shutdown processes what is pending
    assert await tagged(db) == {a.id}


async def test_a_flush_waits_for_the_batch_in_flight_and_two_workers_tag_once(db, make: Factory) -> None:
    """The loop's batch and an explicit flush (or two workers) retag one customer at the same time: one tag, no
    error, and a flush returns only when everything noted before it is done."""
    a = await make.customer(name="甲")
    await complained(db, a)
    worker_1, worker_2 = Followups(db, clock=lambda: NOW), Followups(db, clock=lambda: NOW)
    worker_1.note(a.id)
    in_flight = asyncio.create_task(worker_1.flush())
    await asyncio.sleep(0)  # the batch is taken
    worker_1.note(a.id)
    worker_2.note(a.id)
    await asyncio.gather(worker_1.flush(), worker_2.flush(), in_flight)  # raised IntegrityError on PostgreSQL
    assert await tagged(db) == {a.id}
    async with db() as s:
        assert len((await s.exec(select(CustomerTag).where(CustomerTag.customer_id == a.id))).all()) == 1
