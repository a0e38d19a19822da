"""The nightly insight run on a real database: scores, personas, rules, rule DSL and the win-back care rule."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import col, select

from models import Customer
from models.insight import CustomerInsight, Persona, ProductRule
from scrm.audit import Actor
from scrm.care import preview, save_care_rule
from scrm.db import SessionFactory, transaction
from scrm.insight.nightly import run_insight
from scrm.rules import compile_rule
from scrm.value import recompute_all
from tests.insight.conftest import NOW, shop


async def _insights(db: SessionFactory) -> dict[int, CustomerInsight]:
    async with db() as s:
        return {r.customer_id: r for r in (await s.exec(select(CustomerInsight))).all()}


async def test_scores_separate_loyal_from_lapsed_and_feed_rules(db: SessionFactory) -> None:
    groups = await shop(db)
    async with transaction(db) as s:
        await recompute_all(s, now=NOW)
    result = await run_insight(db, now=NOW)
    assert result["customers"] == 36 and result["scored"] == 36
    rows = await _insights(db)
    loyal = [rows[c] for c in groups["loyal"]]
    lapsed = [rows[c] for c in groups["lapsed"]]
    # a customer who bought every three weeks until last week is expected back; one gone for 300 days is not
    assert min(r.p_alive or 0 for r in loyal) > max(r.p_alive or 0 for r in lapsed)
    assert min(r.expected_orders_90d or 0 for r in loyal) > max(r.expected_orders_90d or 0 for r in lapsed)
    assert all((r.expected_spend_90d or 0) > 0 for r in loyal)
    assert {r.churn_risk for r in lapsed} == {"高"}
    assert {r.churn_risk for r in loyal} <= {"低", "中"}
    async with db() as s:
        at_risk = await compile_rule(s, {"attr": "value.churn_risk", "op": "eq", "value": "高"}, now=NOW)
        ids = set((await s.exec(select(Customer.id).where(at_risk))).all())
        assert set(groups["lapsed"]) <= ids and not ids & set(groups["loyal"])
        likely = await compile_rule(s, {"attr": "value.p_alive", "op": "gte", "value": 0.5}, now=NOW)
        assert set(groups["loyal"]) <= set((await s.exec(select(Customer.id).where(likely))).all())
        names = {p.name: p.size for p in (await s.exec(select(Persona))).all()}
        assert sum(names.values()) == 36 and all(n for n in names)
        assert all(any("\u4e00" <= ch <= "\u9fff" for ch in n) for n in names)
        rules = (await s.exec(select(ProductRule))).all()
        assert any(r.consequent == "保温杯" and "茶叶礼盒" in r.antecedent for r in rules)


async def test_personas_keep_their_names_from_night_to_night(db: SessionFactory) -> None:
    await shop(db)
    async with transaction(db) as s:
        await recompute_all(s, now=NOW)
    await run_insight(db, now=NOW)
    first = await _insights(db)
    await run_insight(db, now=NOW)
    second = await _insights(db)
    assert {c: r.persona for c, r in first.items()} == {c: r.persona for c, r in second.items()}


async def test_winback_rule_reaches_valuable_customers_at_risk_with_recommendations(db: SessionFactory) -> None:
    groups = await shop(db)
    async with transaction(db) as s:
        await recompute_all(s, now=NOW)
    await run_insight(db, now=NOW)
    async with transaction(db) as s:
        rule = await save_care_rule(s, actor=Actor.system("test"), data={
            "name": "挽回", "kind": "winback", "params": {"churn_risk": ["高"]},
            "conditions": {"attr": "value.total_spend", "op": "gte", "value": 1000},
            "template": "{{ name }}，回来看看：{{ recommendations }}"})  # fmt: skip
    async with db() as s:
        total, rows = await preview(s, rule, now=NOW, limit=50)
    assert {r.customer_id for r in rows} == set(groups["lapsed"]) and total == len(groups["lapsed"])
    # what they bought is never recommended; something bought alongside it is
    for row in rows:
        offered = row.text.split("回来看看：")[1].split("、")
        assert "茶具" in offered and not {"茶叶礼盒", "保温杯"} & set(offered), row.text
    async with db() as s:
        count = (await s.execute(sa.select(sa.func.count()).select_from(CustomerInsight)
                                 .where(col(CustomerInsight.churn_risk) == "高"))).scalar()  # fmt: skip
    assert count and count >= len(groups["lapsed"])
