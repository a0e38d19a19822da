"""Rule DSL: validated on save, evaluated set-wise; tags follow the rule, manual tags survive."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa
from sqlmodel import select

from models import CustomerTag, Tag
from models.scrm import CustomerEvent
from scrm.audit import Actor
from scrm.errors import ValidationFailed
from scrm.rules import count_matching
from scrm.segments import save_segment
from scrm.tags import (
    RuleRunResult,
    add_tag,
    preview_conditions,
    record_events,
    retag_customers,
    run_tag_rules,
    save_tag_rule,
)
from tests.scrm.conftest import NOW, Factory, days_ago

ADMIN = Actor(id=None, name="admin", role="admin")


async def on_interaction(s, *, customer_id: int, intent: str, now: datetime) -> list[RuleRunResult]:
    """What a turn records, then what `Followups` does for that customer shortly after."""
    await record_events(s, customer_id=customer_id, events={"intent": intent}, at=now)
    return await retag_customers(s, customer_ids=[customer_id], now=now)


async def tagged(db, tag: str) -> set[int]:
    async with db() as s:
        rows = (await s.exec(select(CustomerTag.customer_id).join(Tag).where(Tag.name == tag))).all()
    return set(rows)


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"attr": "nope", "op": "eq", "value": 1},
        {"attr": "points", "op": "gte", "value": "many"},
        {"attr": "name", "op": "frobnicate", "value": "x"},
        {"all": []},
        {"orders": {"count": {"gte": "2"}}},
        {"event": {"kind": "intent", "count": {"gte": 2}}},
        {"segment": "missing"},
        {"attr": "points", "op": "within_days", "value": 3},
    ],
)
async def test_invalid_rules_are_rejected_on_save(db, bad) -> None:
    async with db() as s, s.begin():
        with pytest.raises(ValidationFailed):
            await save_tag_rule(s, name="bad", tag_name="x", conditions=bad, actor=ADMIN)
    async with db() as s:
        assert (await s.execute(sa.text("select count(*) from tagrule"))).scalar_one() == 0


async def test_refund_twice_in_30_days_tags_incrementally_and_rule_removes_it_later(db, make: Factory) -> None:
    a = await make.customer(name="甲")
    b = await make.customer(name="乙")
    async with db() as s, s.begin():
        await save_tag_rule(
            s,
            name="退款关注",
            tag_name="退款关注",
            actor=ADMIN,
            conditions={"event": {"kind": "intent", "name": "refund", "count": {"gte": 2}, "within_days": 30}},
        )
    async with db() as s, s.begin():
        await on_interaction(s, customer_id=a.id, intent="refund", now=days_ago(5))
    assert await tagged(db, "退款关注") == set()
    async with db() as s, s.begin():
        await on_interaction(s, customer_id=a.id, intent="refund", now=NOW)
        await on_interaction(s, customer_id=b.id, intent="refund", now=NOW)
    assert await tagged(db, "退款关注") == {a.id}  # only a asked twice; b was evaluated alone
    # 40 days later the scheduled run drops the tag (events out of the window)
    async with db() as s, s.begin():
        results = await run_tag_rules(s, now=days_ago(-40))
    assert results[0].removed == 1
    assert await tagged(db, "退款关注") == set()
    async with db() as s:
        assert (await s.execute(sa.select(sa.func.count()).select_from(CustomerEvent))).scalar_one() == 3


async def test_incremental_path_adds_and_removes_only_rule_tags(db, make: Factory) -> None:
    """The incremental path ends where the set-wise run would: rule tags follow the rule, manual ones stay."""
    mine = await make.customer(name="丁", points=10)
    kept = await make.customer(name="戊", points=10)
    async with db() as s, s.begin():
        await add_tag(s, customer_id=kept.id, tag_name="关注", actor=ADMIN)
        await save_tag_rule(
            s, name="r", tag_name="关注", actor=ADMIN,
            conditions={"event": {"kind": "intent", "name": "complaint", "count": {"gte": 1}, "within_days": 7}},
        )  # fmt: skip
    async with db() as s, s.begin():
        results = await on_interaction(s, customer_id=mine.id, intent="greet", now=NOW)
    assert [r.added for r in results] == [0] and await tagged(db, "关注") == {kept.id}
    async with db() as s, s.begin():
        results = await on_interaction(s, customer_id=mine.id, intent="complaint", now=NOW)
    assert [r.added for r in results] == [1] and await tagged(db, "关注") == {mine.id, kept.id}
    for customer in (mine, kept):  # a week later neither complained again
        async with db() as s, s.begin():
            results = await on_interaction(s, customer_id=customer.id, intent="greet", now=days_ago(-8))
        assert [r.removed for r in results] == [1 if customer is mine else 0]
    assert await tagged(db, "关注") == {kept.id}


async def test_manual_tag_is_not_removed_by_rule(db, make: Factory) -> None:
    c = await make.customer(name="丙", points=10)
    async with db() as s, s.begin():
        await add_tag(s, customer_id=c.id, tag_name="大客户", actor=ADMIN)
        await save_tag_rule(
            s, name="r", tag_name="大客户", actor=ADMIN, conditions={"attr": "points", "op": "gte", "value": 1000}
        )
    async with db() as s, s.begin():
        await run_tag_rules(s, now=NOW)
    assert await tagged(db, "大客户") == {c.id}


async def test_orders_attributes_custom_and_segments(db, make: Factory) -> None:
    rich = await make.customer(name="富", region="上海", attributes={"source": "门店", "age": 30})
    poor = await make.customer(name="穷", region="北京", attributes={"source": "线上", "age": 50})
    await make.order(rich.id, "3000.00", days_ago(10))
    await make.order(rich.id, "2500.50", days_ago(100))
    await make.order(poor.id, "20", days_ago(3))
    await make.order(poor.id, "9999", days_ago(3), status="refunded")
    async with db() as s:
        spend = {"orders": {"sum": {"gte": 5000}, "within_days": 365}}
        assert await count_matching(s, spend, now=NOW) == 1
        assert await count_matching(s, {"orders": {"count": {"lt": 1}}}, now=NOW) == 0  # both bought
        assert await count_matching(s, {"orders": {"count": {"lt": 2}, "within_days": 30}}, now=NOW) == 2
        assert await count_matching(s, {"orders": {"count": {"eq": 0}, "status": "refunded"}}, now=NOW) == 1
        recent2 = {"orders": {"count": {"gte": 2}, "within_days": 30}}
        assert await count_matching(s, recent2, now=NOW) == 0
        custom = {
            "all": [
                {"attr": "custom.source", "op": "eq", "value": "门店"},
                {"attr": "custom.age", "op": "lt", "value": 40},
            ]
        }
        assert await count_matching(s, custom, now=NOW) == 1
        assert await count_matching(s, {"not": custom}, now=NOW) == 1
        assert await count_matching(s, {"attr": "name", "op": "contains", "value": "%"}, now=NOW) == 0
    async with db() as s, s.begin():
        await save_segment(s, name="上海客户", conditions={"attr": "region", "op": "eq", "value": "上海"}, actor=ADMIN)
    async with db() as s:
        both = {"all": [{"segment": "上海客户"}, spend]}
        assert await count_matching(s, both, now=NOW) == 1
        preview = await preview_conditions(s, both, now=NOW)
        assert preview.count == 1 and preview.examples[0]["name"] == "富*"


async def test_batch_retag_matches_the_set_wise_run(db, make: Factory) -> None:
    """`retag_customers` for several customers at once ends where `run_tag_rules` ends, including two
    rules that share one tag (the later verdict wins) and a manual tag no rule may remove."""
    people = [await make.customer(name=f"客{i}", points=points) for i, points in enumerate((5, 50, 500, 5000))]
    async with db() as s, s.begin():
        await add_tag(s, customer_id=people[0].id, tag_name="积分", actor=ADMIN)
        for name, points in (("多", 100), ("很多", 1000)):
            await save_tag_rule(
                s, name=name, tag_name="积分", actor=ADMIN, conditions={"attr": "points", "op": "gte", "value": points}
            )
        await save_tag_rule(
            s, name="新客", tag_name="新客", actor=ADMIN, conditions={"attr": "points", "op": "lt", "value": 100}
        )
    async with db() as s, s.begin():
        await retag_customers(s, customer_ids=[p.id for p in people], now=NOW)
    batch = {tag: await tagged(db, tag) for tag in ("积分", "新客")}
    async with db() as s, s.begin():
        results = await run_tag_rules(s, now=NOW)
    assert (results[2].added, results[2].removed) == (0, 0)  # nothing left to change for 新客
    assert {tag: await tagged(db, tag) for tag in ("积分", "新客")} == batch
    # rule 2 ("很多") runs last on the shared tag: only 5000 points keeps it; 0 keeps its manual tag
    assert batch == {"积分": {people[0].id, people[3].id}, "新客": {people[0].id, people[1].id}}
