"""Complaint spikes: the scan on real ticket rows, and the replay evaluation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import select

from models import Customer
from models.insight import ComplaintAlert
from models.ticket import Ticket
from scrm.db import SessionFactory, transaction
from scrm.insight.alerts import scan
from scrm.insight.spikes import replay

NOW = datetime(2026, 11, 24, 3, 40, tzinfo=UTC)  # Tuesday 11:40 in Shanghai


async def _tickets(db: SessionFactory, customer_id: int, category: str, times: list[datetime]) -> None:
    async with db() as s, s.begin():
        for at in times:
            s.add(Ticket(customer_id=customer_id, channel="wechat_oa", category=category, created_at=at))


async def test_a_jump_raises_one_alert_with_its_tickets_and_a_noisy_day_does_not_hide_it(db: SessionFactory) -> None:
    async with db() as s, s.begin():
        c = Customer(name="投诉人")
        s.add(c)
        await s.flush()
        assert c.id is not None
        cid = c.id
    hour = NOW.replace(minute=0)
    # a quiet month: one logistics complaint at this hour each day; yesterday was a noisy day (10)
    await _tickets(db, cid, "物流配送", [hour - timedelta(days=d, minutes=-5) for d in range(2, 30)])
    await _tickets(db, cid, "物流配送", [hour - timedelta(days=1, minutes=-m) for m in range(10)])
    await _tickets(db, cid, "商品质量", [hour + timedelta(minutes=1)])
    async with transaction(db) as s:
        assert await scan(s, now=NOW) == []  # today's hour has nothing yet
    await _tickets(db, cid, "物流配送", [hour + timedelta(minutes=m) for m in range(1, 7)])
    async with transaction(db) as s:
        alerts = await scan(s, now=NOW)
    assert [(a.category, a.channel, a.count) for a in alerts] == [("物流配送", "wechat_oa", 6)]
    assert alerts[0].expected < 2 and len(alerts[0].ticket_ids) == 6
    await _tickets(db, cid, "物流配送", [hour + timedelta(minutes=30)])
    async with transaction(db) as s:
        again = await scan(s, now=NOW)
    assert [a.count for a in again] == [7]
    async with db() as s:
        rows = (await s.exec(select(ComplaintAlert))).all()
    assert len(rows) == 1 and len(rows[0].ticket_ids) == 7


def test_replay_detects_injected_spikes_with_few_false_alarms() -> None:
    figures = replay(months=4, spikes=8, seed=3)
    assert figures["detected"] >= 7
    assert figures["median_delay_minutes"] is not None and float(figures["median_delay_minutes"]) <= 90  # type: ignore[arg-type]
    assert float(figures["false_alarms_per_series_month"]) < 2  # type: ignore[arg-type]
