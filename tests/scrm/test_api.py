"""SCRM over HTTP and through the engine: 360 profile, rules with preview, segments, care, orders:bulk, NPS."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlmodel import select

from bot.keys import db_key, followups_key
from models import AuditLog, Customer, CustomerTag, Message, Tag
from models.scrm import CareDelivery, Consent
from models.ticket import SurveyKind, SurveyResponse
from scrm.care import run_rule
from scrm.defaults import QuietHours, scrm_config
from tests.conftest import login_as


async def say(client: Any, text: str, n: int) -> dict[str, Any]:
    resp = await client.post("/api/v1/webchat/messages", json={"text": text, "client_msg_id": f"scrm-{n}"})
    assert resp.status in (200, 201), await resp.text()
    return await resp.json()


async def visitor_customer_id(client: Any) -> int:
    async with client.app[db_key]() as session:
        return (await session.exec(select(Message.customer_id).where(Message.direction == "in"))).first()


async def test_orders_bulk_profile_and_timeline_with_masking_for_agents(client: Any) -> None:
    admin = await login_as(client, "admin")
    orders = [
        {
            "order_no": "API-1",
            "phone": "13812345678",
            "name": "钱多多",
            "amount": "1999.00",
            "ordered_at": "2026-11-01",
        },
        {"order_no": "API-2", "phone": "13812345678", "amount": 88, "ordered_at": "2026-11-02T12:00:00+08:00"},
    ]
    resp = await client.post("/api/v1/orders:bulk", json={"orders": orders}, headers=admin)
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"created": 2, "updated": 0, "unchanged": 0, "customers_created": 1}
    again = await client.post("/api/v1/orders:bulk", json={"orders": orders}, headers=admin)
    assert (await again.json())["unchanged"] == 2
    bad = await client.post(
        "/api/v1/orders:bulk", headers=admin, json={"orders": [{"order_no": "API-3", "phone": "x", "amount": "-5"}]}
    )
    body = await bad.json()
    assert bad.status == 422 and {e["field"] for e in body["errors"]} >= {"phone", "amount", "ordered_at"}

    async with client.app[db_key]() as session:
        customer_id = (await session.exec(select(Customer.id).where(Customer.phone == "13812345678"))).one()
    profile = await (await client.get(f"/api/v1/customers/{customer_id}", headers=admin)).json()
    assert profile["customer"]["phone"] == "13812345678" and profile["orders"]["count"] == 2
    timeline = await (await client.get(f"/api/v1/customers/{customer_id}/timeline", headers=admin)).json()
    assert [i["order_no"] for i in timeline["items"] if i["type"] == "order"] == ["API-2", "API-1"]

    client.session.cookie_jar.clear()
    agent = await login_as(client, "agent")
    masked = await (await client.get(f"/api/v1/customers/{customer_id}", headers=agent)).json()
    assert masked["customer"]["phone"] == "138****5678" and masked["customer"]["name"] == "钱**"
    forbidden = await client.post("/api/v1/orders:bulk", json={"orders": orders}, headers=agent)
    assert forbidden.status == 403


async def test_tag_rule_preview_validation_segment_count_and_export(client: Any) -> None:
    admin = await login_as(client, "admin")
    await client.post("/api/v1/customers:bulk", headers=admin, json={"customers": [
        {"phone": "13900000001", "name": "上海甲", "region": "上海", "points": 3000},
        {"phone": "13900000002", "name": "北京乙", "region": "北京", "points": 10},
    ]})  # fmt: skip
    invalid = await client.post(
        "/api/v1/tag-rules",
        headers=admin,
        json={"name": "坏规则", "tag_name": "x", "conditions": {"attr": "points", "op": "gte", "value": "很多"}},
    )
    assert invalid.status == 422 and (await invalid.json())["code"] == "validation_failed"
    preview = await client.post(
        "/api/v1/tag-rules:preview", headers=admin, json={"conditions": {"attr": "points", "op": "gte", "value": 1000}}
    )
    assert (await preview.json()) == {"count": 1, "examples": [{"id": 1, "name": "上**", "stage": "潜在"}]}
    created = await client.post(
        "/api/v1/tag-rules",
        headers=admin,
        json={"name": "积分大户", "tag_name": "积分大户", "conditions": {"attr": "points", "op": "gte", "value": 1000}},
    )
    assert created.status == 201
    rule_id = (await created.json())["rule"]["id"]
    run = await (await client.post(f"/api/v1/tag-rules/{rule_id}/run", headers=admin)).json()
    assert run == {"added": 1, "removed": 0, "matching": 1}

    seg = await client.post(
        "/api/v1/segments",
        headers=admin,
        json={
            "name": "上海积分大户",
            "conditions": {"all": [{"tag": "积分大户"}, {"attr": "region", "op": "eq", "value": "上海"}]},
        },
    )
    assert seg.status == 201 and (await seg.json())["count"] == 1
    listed = await (await client.get("/api/v1/segments", headers=admin)).json()
    assert [(s["name"], s["count"]) for s in listed] == [("上海积分大户", 1)]
    export = await client.get(f"/api/v1/segments/{listed[0]['id']}/export?masked=1", headers=admin)
    text = await export.text()
    assert export.status == 200 and "139****0001" in text and "13900000001" not in text
    async with client.app[db_key]() as session:
        actions = set((await session.exec(select(AuditLog.action))).all())
    assert {"tag_rule.save", "segment.save", "segment.export", "customers.import"} <= actions


async def test_refund_questions_tag_the_customer_and_opt_out_is_recorded(client: Any) -> None:
    admin = await login_as(client, "admin")
    await client.post(
        "/api/v1/tag-rules",
        headers=admin,
        json={
            "name": "退款关注",
            "tag_name": "退款关注",
            "conditions": {"event": {"kind": "topic", "name": "退款", "count": {"gte": 2}, "within_days": 30}},
        },
    )
    await say(client, "退款多久能到账", 1)
    await say(client, "怎么查看退款进度", 2)
    await client.app[followups_key].flush()  # tagging follows the turn
    customer_id = await visitor_customer_id(client)
    async with client.app[db_key]() as session:
        tagged = (
            await session.exec(select(Tag.name).join(CustomerTag).where(CustomerTag.customer_id == customer_id))
        ).all()
    assert "退款关注" in tagged
    reply = await say(client, "退订", 3)
    assert "退订" in reply["replies"][0]["text"]
    async with client.app[db_key]() as session:
        consent = (await session.exec(select(Consent).where(Consent.customer_id == customer_id))).one()
    assert consent.granted is False and consent.purpose == "care"


async def test_nps_question_answered_on_webchat_is_stored_and_reported(client: Any) -> None:
    admin = await login_as(client, "admin")
    await say(client, "你好", 10)
    customer_id = await visitor_customer_id(client)
    created = await client.post(
        "/api/v1/care-rules",
        headers=admin,
        json={"name": "NPS", "kind": "nps", "send_hour": 0, "template": "您有多大可能推荐我们？回复 0-10"},
    )
    assert created.status == 201, await created.text()
    rule_id = (await created.json())["id"]
    preview = await (await client.get(f"/api/v1/care-rules/{rule_id}/preview", headers=admin)).json()
    assert preview["total"] == 1 and preview["rows"][0]["customer_id"] == customer_id
    config = scrm_config().model_copy(deep=True)
    config.care.quiet_hours = QuietHours(start=time(0), end=time(0))  # whatever the hour the suite runs at
    result = await run_rule(client.app[db_key], rule_id, now=datetime.now(UTC) - timedelta(minutes=1), config=config)
    assert result.outcomes == {"sent": 1}
    reply = await say(client, "9分", 11)
    assert any("感谢您的评分" in r["text"] for r in reply["replies"]), reply
    await client.app[followups_key].flush()  # marking the NPS question replied follows the turn
    async with client.app[db_key]() as session:
        answer = (await session.exec(select(SurveyResponse).where(SurveyResponse.kind == SurveyKind.NPS))).one()
        delivery = (await session.exec(select(CareDelivery))).one()
    assert (answer.customer_id, answer.score) == (customer_id, 9) and delivery.status == "replied"
    report = await (await client.get("/api/v1/reports/nps", headers=admin)).json()
    assert report["total"] == {"responses": 1, "promoters": 1, "passives": 0, "detractors": 0, "nps": 100.0}
    rules = await (await client.get("/api/v1/care-rules", headers=admin)).json()
    assert [r["results"] for r in rules if r["id"] == rule_id] == [{"replied": 1}]


async def test_custom_attributes_are_typed(client: Any) -> None:
    admin = await login_as(client, "admin")
    resp = await client.post(
        "/api/v1/attributes",
        headers=admin,
        json={"key": "source", "label": "来源渠道", "type": "enum", "options": ["门店", "线上"]},
    )
    assert resp.status == 201, await resp.text()
    await client.post("/api/v1/customers:bulk", headers=admin, json={"customers": [{"phone": "13900000009"}]})
    ok = await client.patch("/api/v1/customers/1", headers=admin, json={"attributes": {"source": "门店"}})
    assert ok.status == 200 and (await ok.json())["attributes"] == {"source": "门店"}
    bad = await client.patch("/api/v1/customers/1", headers=admin, json={"attributes": {"source": "电视"}})
    unknown = await client.patch("/api/v1/customers/1", headers=admin, json={"attributes": {"age": 3}})
    assert bad.status == 422 and unknown.status == 422
    listed = await (await client.get("/api/v1/attributes", headers=admin)).json()
    assert [(a["key"], a["type"]) for a in listed] == [("source", "enum")]


async def test_nps_report_days_are_beijing_days_and_end_is_inclusive(client: Any) -> None:
    """23:30 on 31 March in Beijing is March; 00:30 on 1 April in Beijing (still 31 March in UTC) is not."""
    admin = await login_as(client, "admin")
    async with client.app[db_key]() as session:
        customer = Customer()
        session.add(customer)
        await session.flush()
        for hour, score in ((15, 10), (16, 0)):  # 23:30 and 00:30 the next day, Beijing
            at = datetime(2026, 3, 31, hour, 30, tzinfo=UTC)
            session.add(SurveyResponse(kind=SurveyKind.NPS, customer_id=customer.id, score=score, created_at=at))
        await session.commit()
    march = await (await client.get("/api/v1/reports/nps?start=2026-03-01&end=2026-03-31", headers=admin)).json()
    assert [(p["period"], p["responses"]) for p in march["periods"]] == [("2026-03", 1)]
    assert march["total"]["promoters"] == 1 and march["total"]["detractors"] == 0
    april = await (await client.get("/api/v1/reports/nps?start=2026-04-01&end=2026-04-01", headers=admin)).json()
    assert [(p["period"], p["responses"]) for p in april["periods"]] == [("2026-04", 1)]
