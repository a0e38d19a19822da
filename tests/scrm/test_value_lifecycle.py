"""RFM quintiles, value tiers, member levels and lifecycle stages, recomputed set-wise."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import select

from models import Customer
from models.scrm import CustomerValue, LifecycleEvent
from scrm.value import recompute_all
from tests.scrm.conftest import NOW, Factory, days_ago


async def test_rfm_tiers_levels_and_stages(db, make: Factory) -> None:
    prospect = await make.customer(name="潜", last_active_at=days_ago(2))
    new = await make.customer(name="新", last_active_at=days_ago(1))
    await make.order(new.id, 100, days_ago(5))
    loyal = await make.customer(name="忠", points=6000, last_active_at=days_ago(1))
    for i in range(6):
        await make.order(loyal.id, 2000, days_ago(3 + i * 20))
    fading = await make.customer(name="衰", last_active_at=days_ago(120))
    await make.order(fading.id, 50, days_ago(130))
    await make.order(fading.id, 50, days_ago(200))
    gone = await make.customer(name="流", last_active_at=days_ago(400))
    await make.order(gone.id, 10, days_ago(400))
    async with db() as s, s.begin():
        result = await recompute_all(s, now=NOW)
    assert result.customers == 5
    async with db() as s:
        values = {v.customer_id: v for v in (await s.exec(select(CustomerValue))).all()}
        stages = {c.id: (c.lifecycle_stage, c.member_level) for c in (await s.exec(select(Customer))).all()}
    assert values[loyal.id].order_count == 6 and values[loyal.id].total_spend == 12000
    assert (values[loyal.id].r, values[loyal.id].f, values[loyal.id].m) == (5, 5, 5)
    assert values[loyal.id].tier == "高价值"
    assert values[prospect.id].tier == "低价值" and values[prospect.id].f == 1
    assert values[new.id].tier == "潜力"  # recent, but one small order
    assert values[gone.id].recency_days == 400
    assert stages == {
        prospect.id: ("潜在", "普通会员"),
        new.id: ("新客", "普通会员"),
        loyal.id: ("成熟", "金卡会员"),  # 6000 points >= 5000 (spend 12000 >= 10000 too)
        fading.id: ("衰退", "普通会员"),
        gone.id: ("流失", "普通会员"),
    }

    # the churned customer comes back: 回流, and an event each time a stage changes
    async with db() as s, s.begin():
        back = await s.get(Customer, gone.id)
        back.last_active_at = NOW
        rich = await s.get(Customer, new.id)
        rich.points = 25000
    async with db() as s, s.begin():
        second = await recompute_all(s, now=NOW + timedelta(hours=1))
    assert second.stage_changes == 1 and second.level_changes == 1
    async with db() as s:
        events = (await s.exec(select(LifecycleEvent).order_by(LifecycleEvent.id))).all()
        returned = await s.get(Customer, gone.id)
    assert returned.lifecycle_stage == "回流"
    last_two = [(e.customer_id, e.kind, e.from_value, e.to_value) for e in events[-2:]]
    assert (new.id, "level", "普通会员", "钻石会员") in last_two
    assert (gone.id, "stage", "流失", "回流") in last_two
    # recompute again: nothing changes, no new events
    async with db() as s, s.begin():
        third = await recompute_all(s, now=NOW + timedelta(hours=2))
    assert (third.stage_changes, third.level_changes) == (0, 0)


async def test_rebuild_keeps_value_table_indexed_and_in_step(db, make: Factory) -> None:
    """PostgreSQL rebuilds `customervalue` with its secondary indexes dropped and recreated: after two
    nightly runs the indexes are all there again and every live customer has exactly one row."""
    big = await make.customer(name="大", last_active_at=days_ago(1))
    for i in range(6):
        await make.order(big.id, 3000, days_ago(2 + i))
    small = await make.customer(name="小", last_active_at=days_ago(3))
    for hours in (0, 24):
        async with db() as s, s.begin():
            await recompute_all(s, now=NOW + timedelta(hours=hours))
    async with db() as s:
        rows = (await s.exec(select(CustomerValue).order_by(CustomerValue.customer_id))).all()
        conn = await s.connection()
        indexes = await conn.run_sync(lambda c: {i["name"] for i in sa.inspect(c).get_indexes("customervalue")})
    assert [(v.customer_id, v.tier, v.order_count) for v in rows] == [(big.id, "一般", 6), (small.id, "低价值", 0)]
    assert indexes == {i.name for i in CustomerValue.__table__.indexes}


async def test_full_reclassification_updates_customers_in_place_on_postgresql(db) -> None:
    """Every customer changes stage and level on the first run; on PostgreSQL the pages keep room
    (fillfactor, migration 0007) so most new row versions stay on their page (HOT: no index writes);
    with 80 % fill about a quarter did, here about four fifths."""
    async with db() as s, s.begin():
        if s.bind.dialect.name != "postgresql":
            pytest.skip("heap pages and HOT updates are PostgreSQL's")
        s.add_all(Customer(name=f"客户{i}", phone=f"1380000{i:04d}", region="上海", last_active_at=days_ago(i % 300))
                  for i in range(300))  # fmt: skip
    page_of = "SELECT id, (ctid::text::point)[0] FROM customer"
    async with db() as s:
        before = dict((await s.execute(sa.text(page_of))).all())
    async with db() as s, s.begin():
        result = await recompute_all(s, now=NOW)
    async with db() as s:
        after = dict((await s.execute(sa.text(page_of))).all())
        levels = set((await s.exec(select(Customer.member_level))).all())
    assert result.profiles_updated == 300 and levels == {"普通会员"}
    assert len({page for page in before.values()}) > 5  # several full pages, not one half-empty page
    stayed = sum(after[i] == page for i, page in before.items())
    assert stayed >= 0.6 * len(before), f"only {stayed} of {len(before)} rows were updated on their page"
