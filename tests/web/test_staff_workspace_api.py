"""The API behind the staff workspace pages: ticket views and SLA states, the ticket detail's context,
customer search per role, the merge preview, care template rendering, channel states, audit filters and
Chinese validation messages."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlmodel import select

from bot.app import create_app
from bot.keys import db_key
from config.settings import Settings
from models import AuditLog, ChannelIdentity, Conversation, Customer, Direction, Message, Sender
from models.scrm import CustomerValue, MergeRecord
from models.ticket import Ticket
from scrm.db import transaction
from tests.web.conftest import make_user, sign_in

PAST, FUTURE = datetime(2020, 1, 1, tzinfo=UTC), datetime(2099, 1, 1, tzinfo=UTC)  # never depends on today


async def customer_with_conversation(client: Any, name: str, phone: str) -> tuple[int, int]:
    async with transaction(client.app[db_key]) as session:
        customer = Customer(name=name, phone=phone)
        session.add(customer)
        await session.flush()
        assert customer.id is not None
        conversation = Conversation(customer_id=customer.id, channel="webchat", app_id="default", external_id=phone)
        session.add(conversation)
        await session.flush()
        assert conversation.id is not None
        text = f"我的电话 {phone}，快递没到"
        session.add(Message(conversation_id=conversation.id, customer_id=customer.id, channel="webchat",
                            direction=Direction.IN, sender=Sender.CUSTOMER, text=text))  # fmt: skip
        return customer.id, conversation.id


async def set_ticket(client: Any, ticket_id: int, **fields: Any) -> None:
    async with transaction(client.app[db_key]) as session:
        ticket = await session.get(Ticket, ticket_id)
        assert ticket is not None
        for key, value in fields.items():
            setattr(ticket, key, value)


async def test_ticket_views_sla_states_and_the_detail_context(client: Any, staff: Any) -> None:
    agent, lead = await staff("agent"), await staff("supervisor")
    ids = []
    for n in range(4):
        customer_id, _ = await customer_with_conversation(client, f"王小{n}", f"1380000000{n}")
        resp = await lead.post(
            "/tickets", {"customer_id": customer_id, "description": "快递三天没到", "channel": "webchat"}
        )
        assert resp.status == 201, await resp.text()
        ids.append((await resp.json())["id"])
    breached, due_soon, ok, escalated = ids
    await set_ticket(client, breached, resolution_due=PAST, resolution_warn_at=PAST, first_response_at=PAST)
    await set_ticket(client, due_soon, resolution_due=FUTURE, resolution_warn_at=PAST, first_response_at=PAST)
    await set_ticket(client, ok, resolution_due=FUTURE, resolution_warn_at=FUTURE, first_response_at=PAST)
    await set_ticket(client, escalated, resolution_due=FUTURE, resolution_warn_at=FUTURE, first_response_at=PAST,
                     escalation_level=1, assignee_id=agent.id, status="assigned")  # fmt: skip

    async def view(who: Any, query: str) -> list[int]:
        resp = await who.get("/tickets?" + query)
        assert resp.status == 200, await resp.text()
        return sorted(t["id"] for t in await resp.json())

    assert await view(lead, "sla=breached") == [breached]
    assert await view(lead, "sla=due_soon") == [due_soon]
    assert await view(lead, "escalated=true") == [escalated]
    assert await view(lead, "unassigned=true") == sorted([breached, due_soon, ok])
    assert await view(agent, "mine=true&open=true") == [escalated]
    assert await view(lead, "channel=webchat") == sorted(ids) and await view(lead, "channel=wecom") == []
    assert (await lead.get("/tickets?sla=late")).status == 422

    rows = {t["id"]: t for t in await (await agent.get("/tickets?open=true")).json()}
    assert rows[breached]["sla_state"] == "breached" and rows[due_soon]["sla_state"] == "due_soon"
    assert rows[ok]["sla_state"] == "ok" and rows[escalated]["assignee_name"] == agent.user.username
    assert rows[ok]["customer_name"] == "王**"  # agents see names masked
    assert (await (await lead.get("/tickets?open=true")).json())[0]["customer_name"].startswith("王小")

    detail = await (await agent.get(f"/tickets/{escalated}")).json()
    assert detail["customer"]["masked"] and "13800000003" not in str(detail)
    assert [m["sender"] for m in detail["messages"]][:1] == ["customer"]
    assert set(detail["transitions"]) == {"in_progress", "waiting_customer", "resolved"}
    assert detail["surveys"] == [] and detail["events"][0]["kind"] == "opened"

    taxonomy = await (await agent.get("/tickets/taxonomy")).json()
    assert "快递延误/丢件" in taxonomy["root_causes"] and taxonomy["resolution_codes"]["reshipped"] == "已补发"
    assert "售后" in taxonomy["skill_groups"] and "主管" in taxonomy["skill_groups"]

    # A stale version and an invalid transition are refused in words a supervisor reads.
    stale = await lead.post(f"/tickets/{escalated}/transition", {"to": "in_progress", "version": 1})
    assert stale.status == 409 and "已被他人修改" in (await stale.json())["message"]
    wrong = await lead.post(f"/tickets/{ok}/transition", {"to": "waiting_customer"})
    assert wrong.status == 409 and (await wrong.json())["message"] == "工单状态不能从“待分配”变为“等待客户”"
    empty = await lead.post(f"/tickets/{ok}/resolve", {"note": ""})
    body = await empty.json()
    assert empty.status == 422 and body["message"] == "参数不合法：说明：至少 1 个字符", body


async def test_customer_search_per_role_and_the_merge_preview_changes_nothing(client: Any, staff: Any) -> None:
    agent, lead = await staff("agent"), await staff("supervisor")
    main_id, _ = await customer_with_conversation(client, "陈大文", "13912345678")
    twin_id, _ = await customer_with_conversation(client, "陈大文", "13700000000")
    async with transaction(client.app[db_key]) as session:
        session.add(CustomerValue(customer_id=main_id, tier="高价值", total_spend=Decimal("9000")))
        session.add(ChannelIdentity(customer_id=main_id, channel="wechat_oa", app_id="default", external_id="o-1"))

    async def found(who: Any, query: str) -> list[dict[str, Any]]:
        resp = await who.get("/customers?" + query)
        assert resp.status == 200, await resp.text()
        return list((await resp.json())["items"])

    partial = await agent.get("/customers?q=1391234")  # part of a number: not for roles that see it masked
    assert partial.status == 422 and "完整的手机号" in (await partial.json())["message"]
    [hit] = await found(agent, "q=13912345678")
    assert hit["phone"] == "139****5678" and hit["name"] == "陈**" and hit["tier"] == "高价值"
    assert hit["channels"] == ["wechat_oa"]
    assert [c["id"] for c in await found(lead, "q=1391234")] == [main_id]
    assert [c["id"] for c in await found(lead, "tier=高价值")] == [main_id]
    assert [c["id"] for c in await found(lead, "channel=wechat_oa")] == [main_id]

    preview = await lead.get(f"/customers/{main_id}/merge-preview?source_id={twin_id}")
    assert preview.status == 200, await preview.text()
    shown = await preview.json()
    assert shown["moved"]["conversation"] == 1 and shown["moved"]["message"] == 1
    assert shown["source"]["id"] == twin_id and shown["target"]["phone"] == "13912345678"
    async with client.app[db_key]() as session:
        twin = await session.get(Customer, twin_id)
        assert twin is not None and twin.merged_into_id is None
        assert (await session.exec(select(MergeRecord))).all() == []
        assert (await session.exec(select(AuditLog).where(AuditLog.action == "customer.merge"))).all() == []
    assert (await agent.get(f"/customers/{main_id}/merge-preview?source_id={twin_id}")).status == 403
    assert (await lead.get(f"/customers/{main_id}/merge-preview?source_id={main_id}")).status == 422


async def test_care_template_renders_for_a_sample_customer_of_the_audience(client: Any, staff: Any) -> None:
    lead = await staff("supervisor")
    await customer_with_conversation(client, "林一", "13600000001")
    only_lin = {"attr": "name", "op": "eq", "value": "林一"}
    body = {"template": "{{ name }}，{{ days }} 天没见", "params": {"days": 45}, "conditions": only_lin}
    resp = await lead.post("/care-rules:render", body)
    out = await resp.json()
    assert resp.status == 200 and out["text"] == "林一，45 天没见" and out["customer"]["name"] == "林一", out
    assert out["guards"]["weekly_cap"] >= 1 and len(out["guards"]["quiet_hours"]) == 2
    nobody = await lead.post(
        "/care-rules:render", {"template": "{{ name }}您好", "conditions": {"tag": "不存在的标签"}}
    )
    assert (await nobody.json())["customer"] is None  # sample values then
    broken = await lead.post("/care-rules:render", {"template": "{{ name "})
    assert broken.status == 422 and "模板错误" in (await broken.json())["message"]


async def test_channels_say_what_the_demo_account_can_do(settings: Settings, aiohttp_client: Any) -> None:
    dev = settings.model_copy(update={"env": "dev", "wechat_token": "", "wechat_app_id": ""})
    app_client = await aiohttp_client(create_app(dev))
    admin = await make_user(app_client, "admin")
    await sign_in(app_client, admin.username)
    channels = {c["channel"]: c for c in await (await app_client.get("/api/v1/admin/channels")).json()}
    assert list(channels) == ["webchat", "wechat_oa", "wecom", "wechat_kf"]
    oa = channels["wechat_oa"]
    assert (oa["state"], oa["state_label"], oa["configured"]) == ("demo", "演示模式", False)
    assert any("演示 Token" in n for n in oa["notes"]) and oa["callback_url"].endswith("/channels/wechat/default")
    assert channels["wechat_kf"]["state"] == "off" and channels["wechat_kf"]["name"] == "微信客服"


async def test_audit_log_filters_by_beijing_day_and_object(client: Any, staff: Any) -> None:
    admin = await staff("admin")
    async with transaction(client.app[db_key]) as session:
        for day, hour, object_id in [(1, 15, "7"), (1, 17, "8"), (2, 3, "7")]:  # 11-01 15:00 UTC = 11-01 23:00 Beijing
            session.add(AuditLog(actor="zhang", action="ticket.close", object_type="ticket", object_id=object_id,
                                 created_at=datetime(2026, 11, day, hour, tzinfo=UTC)))  # fmt: skip

    async def ids(query: str) -> list[str]:
        rows = await (await admin.get("/admin/audit?actor=zhang&" + query)).json()
        return [r["object_id"] for r in rows]

    assert await ids(f"start={date(2026, 11, 1)}&end={date(2026, 11, 1)}") == ["7"]
    assert await ids("start=2026-11-02&end=2026-11-02") == ["7", "8"]
    assert await ids("object_id=8") == ["8"]
    assert (await admin.get("/admin/audit?start=yesterday")).status == 422
