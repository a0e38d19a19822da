"""Member care: birthdays (solar, leap day, lunar), festivals incl. 春节 2027, guards, exactly-once ledger."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlmodel import select

from models import Message, OutboxMessage
from models.scrm import CareDelivery
from scrm.audit import Actor
from scrm.care import (
    birthday_matches,
    defer_past_quiet_hours,
    in_quiet_hours,
    preview,
    run_rule,
    save_care_rule,
    set_consent,
)
from scrm.errors import ValidationFailed
from tests.scrm.conftest import Factory

SH = ZoneInfo("Asia/Shanghai")
ADMIN = Actor(id=None, name="admin", role="admin")


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=SH).astimezone(UTC)


async def make_rule(db, **data) -> int:
    data.setdefault("name", "rule")
    data.setdefault("template", "{{ name }}，祝您生日快乐！您是{{ level }}，积分 {{ points }}。")
    async with db() as s, s.begin():
        rule = await save_care_rule(s, data=data, actor=ADMIN)
    assert rule.id is not None
    return rule.id


async def ledger(db) -> list[CareDelivery]:
    async with db() as s:
        return list((await s.exec(select(CareDelivery).order_by(CareDelivery.customer_id))).all())


async def care_messages(db) -> list[Message]:
    async with db() as s:
        return list((await s.exec(select(Message).where(Message.kind == "care").order_by(Message.id))).all())


def test_quiet_hours_cross_midnight() -> None:
    start, end = time(22), time(8)
    assert in_quiet_hours(time(23, 30), start, end)
    assert in_quiet_hours(time(0, 0), start, end)
    assert in_quiet_hours(time(7, 59), start, end)
    assert not in_quiet_hours(time(8, 0), start, end)
    assert not in_quiet_hours(time(21, 59), start, end)
    assert not in_quiet_hours(time(12), time(8), time(8))  # empty window
    day = date(2026, 11, 23)
    assert defer_past_quiet_hours(at(day, 23, 30), SH, start, end) == at(day + timedelta(days=1), 8)
    assert defer_past_quiet_hours(at(day, 1, 15), SH, start, end) == at(day, 8)
    assert defer_past_quiet_hours(at(day, 10), SH, start, end) == at(day, 10)


def test_birthday_matching_leap_day_and_lunar() -> None:
    solar, _, _ = birthday_matches(date(2027, 2, 28))
    assert solar == [(2, 28), (2, 29)]  # common year: 2/29 birthdays celebrate on 2/28
    solar, _, _ = birthday_matches(date(2028, 2, 28))
    assert solar == [(2, 28)]
    solar, _, _ = birthday_matches(date(2028, 2, 29))
    assert solar == [(2, 29)]
    _, lunar, period = birthday_matches(date(2027, 2, 6))  # 春节 2027 = 正月初一
    assert lunar == [(1, 1)] and period == "L2027"


async def test_birthday_run_sends_once_with_rendered_template_and_ledger(db, make: Factory) -> None:
    day = date(2026, 11, 23)
    now = at(day, 10)
    today = await make.customer(
        name="王芳",
        birthday=date(1990, 11, 23),
        member_level="金卡会员",
        points=800,
        last_inbound_at=now - timedelta(hours=3),
    )
    await make.customer(name="李雷", birthday=date(1990, 11, 24), last_inbound_at=now)
    rule_id = await make_rule(db, kind="birthday", name="生日")
    first = await run_rule(db, rule_id, day=day, now=now)
    again = await run_rule(db, rule_id, day=day, now=now + timedelta(hours=1))
    assert first.claimed == 1 and first.outcomes == {"sent": 1}
    assert again.claimed == 0 and again.outcomes == {}
    rows = await ledger(db)
    assert [(r.customer_id, r.period, r.status) for r in rows] == [(today.id, "2026", "sent")]
    messages = await care_messages(db)
    assert len(messages) == 1
    assert messages[0].text == "王芳，祝您生日快乐！您是金卡会员，积分 800。"
    async with db() as s:
        outbox = (await s.exec(select(OutboxMessage))).one()
    assert outbox.message_id == messages[0].id and outbox.channel == "wechat_oa"


async def test_leap_day_and_lunar_birthdays_on_chinese_new_year_2027(db, make: Factory) -> None:
    leap = await make.customer(name="闰", birthday=date(2000, 2, 29), last_inbound_at=at(date(2027, 2, 28), 9))
    # lunar birthday 正月初一 (born 1996-02-19 = lunar 1996-01-01)
    lunar = await make.customer(
        name="农历",
        birthday=date(1996, 2, 19),
        birthday_calendar="lunar",
        birth_month=1,
        birth_day=1,
        last_inbound_at=at(date(2027, 2, 6), 9),
    )
    # solar birthday on Feb 6 too; born on Feb 19 solar should NOT match on Feb 6
    solar_feb6 = await make.customer(name="公历", birthday=date(1990, 2, 6), last_inbound_at=at(date(2027, 2, 6), 9))
    await make.customer(name="公历219", birthday=date(1996, 2, 19), last_inbound_at=at(date(2027, 2, 6), 9))
    rule_id = await make_rule(db, kind="birthday", name="生日")
    cny = await run_rule(db, rule_id, day=date(2027, 2, 6), now=at(date(2027, 2, 6), 10))
    assert cny.claimed == 2
    rows = {r.customer_id: r.period for r in await ledger(db)}
    assert rows == {lunar.id: "L2027", solar_feb6.id: "2027"}
    feb28 = await run_rule(db, rule_id, day=date(2027, 2, 28), now=at(date(2027, 2, 28), 10))
    assert feb28.claimed == 1
    assert {r.customer_id for r in await ledger(db)} == {lunar.id, solar_feb6.id, leap.id}


async def test_festival_rule_uses_business_calendar_for_2027(db, make: Factory) -> None:
    c = await make.customer(name="节", last_inbound_at=at(date(2027, 2, 6), 8))
    rule_id = await make_rule(
        db,
        kind="festival",
        name="节日",
        params={"festivals": ["春节", "中秋节"]},
        template="{{ name }}，{{ festival }}快乐！",
    )
    none = await run_rule(db, rule_id, day=date(2027, 2, 5), now=at(date(2027, 2, 5), 10))
    assert none.claimed == 0
    result = await run_rule(db, rule_id, day=date(2027, 2, 6), now=at(date(2027, 2, 6), 10))
    assert result.outcomes == {"sent": 1}
    [row] = await ledger(db)
    assert (row.customer_id, row.period, row.text) == (c.id, "春节-2027", "节，春节快乐！")
    with pytest.raises(ValidationFailed):
        async with db() as s, s.begin():
            await save_care_rule(
                s,
                data={"name": "x", "kind": "festival", "params": {"festivals": ["愚人节"]}, "template": "hi"},
                actor=ADMIN,
            )


async def test_two_runs_at_once_send_one_message_each(db, make: Factory) -> None:
    day = date(2026, 11, 23)
    now = at(day, 10)
    customers = [
        await make.customer(name=f"客{i}", birthday=date(1980 + i, 11, 23), last_inbound_at=now) for i in range(12)
    ]
    rule_id = await make_rule(db, kind="birthday", name="生日")
    results = await asyncio.gather(*(run_rule(db, rule_id, day=day, now=now, batch=5) for _ in range(3)))
    assert sum(r.claimed for r in results) == 12
    assert sum(r.outcomes.get("sent", 0) for r in results) == 12
    messages = await care_messages(db)
    assert sorted(m.customer_id for m in messages) == sorted(c.id for c in customers)
    async with db() as s:
        assert (await s.execute(sa.select(sa.func.count()).select_from(OutboxMessage))).scalar_one() == 12


async def test_opt_out_is_honoured(db, make: Factory) -> None:
    day = date(2026, 11, 23)
    now = at(day, 10)
    out = await make.customer(name="退订", birthday=date(1990, 11, 23), last_inbound_at=now)
    stay = await make.customer(name="留下", birthday=date(1991, 11, 23), last_inbound_at=now)
    async with db() as s, s.begin():
        await set_consent(s, customer_id=out.id, granted=False, actor=ADMIN)
    rule_id = await make_rule(db, kind="birthday", name="生日")
    result = await run_rule(db, rule_id, day=day, now=now)
    assert result.outcomes == {"opt_out": 1, "sent": 1}
    statuses = {r.customer_id: (r.status, r.reason) for r in await ledger(db)}
    assert statuses == {out.id: ("opted_out", "opt_out"), stay.id: ("sent", None)}
    assert [m.customer_id for m in await care_messages(db)] == [stay.id]


async def test_wechat_48_hour_window_falls_back_to_template_else_skips(db, make: Factory) -> None:
    day = date(2026, 11, 23)
    now = at(day, 10)
    old = now - timedelta(hours=49)
    a = await make.customer(name="甲", birthday=date(1990, 11, 23), last_inbound_at=old)
    b = await make.customer(name="乙", birthday=date(1990, 11, 23), channel="webchat", last_inbound_at=old)
    plain = await make_rule(db, kind="birthday", name="无模板")
    result = await run_rule(db, plain, day=day, now=now)
    assert result.outcomes == {"outside_48h_window": 1, "sent": 1}  # webchat has no 48-hour rule
    templated = await make_rule(
        db,
        kind="birthday",
        name="有模板",
        wechat_template={"template_id": "TPL-1", "data": {"first": "{{ name }}生日快乐", "remark": "祝好"}},
    )
    result = await run_rule(db, templated, day=day, now=now)
    assert result.outcomes == {"sent": 2}
    async with db() as s:
        rows = (await s.exec(select(CareDelivery).where(CareDelivery.rule_id == templated))).all()
        vias = {r.customer_id: r.via for r in rows}
        outbox = (await s.exec(select(OutboxMessage).join(Message).where(Message.customer_id == a.id))).one()
    assert vias == {a.id: "template", b.id: "service"}
    assert outbox.payload["template"] == {
        "template_id": "TPL-1",
        "url": None,
        "data": {"first": {"value": "甲生日快乐"}, "remark": {"value": "祝好"}},
    }


async def test_quiet_hours_defer_and_weekly_cap(db, make: Factory) -> None:
    day = date(2026, 11, 23)
    late = at(day, 23, 30)
    c = await make.customer(name="夜", birthday=date(1990, 11, 23), last_inbound_at=late - timedelta(hours=1))
    ids = [await make_rule(db, kind="birthday", name=f"r{i}") for i in range(3)]
    outcomes = [(await run_rule(db, rid, day=day, now=late)).outcomes for rid in ids]
    assert outcomes == [{"sent": 1}, {"sent": 1}, {"frequency_cap": 1}]
    async with db() as s:
        due = (await s.exec(select(OutboxMessage.next_attempt_at))).all()
    assert all(d.astimezone(SH) == datetime(2026, 11, 24, 8, 0, tzinfo=SH) for d in due) and len(due) == 2
    assert [r.customer_id for r in await ledger(db)] == [c.id] * 3


async def test_preview_writes_nothing(db, make: Factory) -> None:
    day = date(2026, 11, 23)
    now = at(day, 10)
    await make.customer(name="预览", birthday=date(1990, 11, 23), last_inbound_at=now)
    rule_id = await make_rule(db, kind="birthday", name="生日")
    async with db() as s:
        from scrm.care import get_rule

        rule = await get_rule(s, rule_id)
        total, rows = await preview(s, rule, day=day, now=now)
    assert total == 1 and rows[0].outcome == "sent" and rows[0].text.startswith("预览，祝您生日快乐")
    assert await ledger(db) == [] and await care_messages(db) == []


async def test_sandboxed_template_rejects_unsafe_code(db) -> None:
    with pytest.raises(ValidationFailed):
        await make_rule(db, kind="birthday", name="evil", template="{{ ''.__class__.__mro__[1].__subclasses__() }}")
