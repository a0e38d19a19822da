"""Full loops through the web-chat channel and the ticket API: an angry customer -> complaint flow ->
ticket (category, severity, SLA) -> assigned -> in progress -> resolved -> survey 2 -> reopened and
escalated -> resolved -> survey 5 -> closed; every notice reaches the customer exactly once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import col, select

from bot.keys import db_key
from models import Presence, Role, SurveyResponse, User, UserCreate, utcnow
from models.ticket import Severity, Ticket, TicketEvent, TicketStatus
from scrm.audit import Actor
from scrm.calendar import local_today
from scrm.db import transaction
from scrm.users import create_user

PASSWORD = "secret-pass-1"


async def staff(client: Any, username: str, role: Role, *, skills: str = "", online: bool = True) -> int:
    async with transaction(client.app[db_key]) as session:
        user = await create_user(
            session, data=UserCreate(username=username, password=PASSWORD, role=role, skills=skills),
            actor=Actor.system("test"),
        )  # fmt: skip
        user.presence = Presence.ONLINE if online else Presence.OFFLINE
        assert user.id is not None
        return user.id


async def sign_in(client: Any, username: str) -> dict[str, str]:
    resp = await client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    assert resp.status == 200, await resp.text()
    return {"X-CSRF-Token": (await resp.json())["csrf_token"]}


async def say(client: Any, text: str, msg_id: str) -> list[str]:
    resp = await client.post("/api/v1/webchat/messages", json={"text": text, "client_msg_id": msg_id})
    assert resp.status == 201, await resp.text()
    return [r["text"] for r in (await resp.json())["replies"]]


async def history(client: Any) -> list[str]:
    body = await (await client.get("/api/v1/webchat/messages?after=0")).json()
    return [m["text"] for m in body["messages"] if m["direction"] == "out"]


async def one_ticket(client: Any) -> Ticket:
    async with client.app[db_key]() as session:
        return (await session.exec(select(Ticket))).one()


def _around_today() -> str:
    """Yesterday and today in Beijing: the tickets just opened, even when the test straddles midnight."""
    today = local_today(utcnow())
    return f"from={today - timedelta(days=1)}&to={today}"


async def test_angry_customer_to_closed_ticket_with_reopen_in_between(client: Any) -> None:
    agent_id = await staff(client, "li-agent", Role.AGENT, skills="售后")
    boss_id = await staff(client, "boss", Role.SUPERVISOR)

    first = await say(client, "你们卖的热水壶质量太差了，用了两天就坏了！我要投诉！订单号 DD2026112300001", "c1")
    assert "非常抱歉" in first[0] and "联系您" in first[0]  # order and description known: asks for contact
    summary = await say(client, "1", "c2")
    assert "DD2026112300001" in summary[0] and "确认" in summary[0]
    again = await say(client, "修改订单号", "c3")
    assert "订单号" in again[0]
    assert "DD2026112300009" in (await say(client, "DD2026112300009", "c4"))[0]
    confirmed = await say(client, "确认", "c5")

    ticket = await one_ticket(client)
    assert ticket.number and ticket.number in confirmed[0]
    assert ticket.order_no == "DD2026112300009" and ticket.channel == "webchat"
    assert ticket.category == "商品质量" and ticket.severity in {Severity.P1, Severity.P2, Severity.P3}
    assert ticket.severity_reason
    assert ticket.first_response_due is not None and ticket.resolution_due is not None
    assert ticket.status == TicketStatus.ASSIGNED and ticket.assignee_id == agent_id

    headers = await sign_in(client, "li-agent")
    base = f"/api/v1/tickets/{ticket.id}"
    resp = await client.post(f"{base}/transition", json={"to": "in_progress"}, headers=headers)
    assert resp.status == 200, await resp.text()
    resp = await client.post(f"{base}/resolve", json={"note": "已为您换新", "root_cause": "品控"}, headers=headers)
    assert resp.status == 200 and (await resp.json())["status"] == "resolved"

    assert await say(client, "2 还是不好用", "c6") == []  # the reopen notice comes from the ticket
    reopened = await one_ticket(client)
    assert reopened.status == TicketStatus.REOPENED and reopened.reopen_count == 1
    assert reopened.escalated_to_id == boss_id and reopened.escalation_level == 1

    resp = await client.post(f"{base}/resolve", json={"note": "已退款并补偿", "resolution_code": "refund"},
                             headers=headers)  # fmt: skip
    assert resp.status == 200, await resp.text()
    assert await say(client, "5", "c7") == []
    closed = await one_ticket(client)
    assert closed.status == TicketStatus.CLOSED and closed.closed_at is not None

    texts = await history(client)
    notices = {
        "received": "已受理",
        "handling": "跟进处理中",
        "resolved": "处理完毕",
        "reopened": "重新打开",
        "closed": "已关闭",
    }
    counts = {k: sum(1 for t in texts if v in t and closed.number in t) for k, v in notices.items()}
    assert counts == {"received": 1, "handling": 1, "resolved": 2, "reopened": 1, "closed": 1}
    async with client.app[db_key]() as session:
        answers = (await session.exec(select(SurveyResponse).order_by(col(SurveyResponse.id)))).all()
        assert [(a.score, a.ticket_id) for a in answers] == [(2, closed.id), (5, closed.id)]
        moves = (
            await session.exec(
                select(TicketEvent.to_status).where(TicketEvent.kind == "transition").order_by(col(TicketEvent.id))
            )
        ).all()
    assert moves == ["triaged", "assigned", "in_progress", "resolved", "reopened", "resolved", "closed"]


async def test_second_complaint_on_the_same_order_is_added_to_the_open_ticket(client: Any) -> None:
    await say(client, "快递丢件了，我要投诉，订单号 DD2026112300001", "a1")
    await say(client, "1", "a2")
    await say(client, "确认", "a3")
    replies = await say(client, "还没人联系我！我要投诉！订单 DD2026112300001", "a4")
    ticket = await one_ticket(client)
    assert ticket.number in replies[0] and "加入工单" in replies[0]
    async with client.app[db_key]() as session:
        added = (await session.exec(select(TicketEvent).where(TicketEvent.kind == "customer_message"))).all()
    assert len(added) == 1 and "还没人联系我" in added[0].note


async def test_cancel_and_unrelated_questions_leave_no_ticket(client: Any) -> None:
    assert "订单号" in (await say(client, "太差劲了，我要投诉", "b1"))[0]
    assert "已取消" in (await say(client, "算了，取消吧", "b2"))[0]
    async with client.app[db_key]() as session:
        assert (await session.exec(select(Ticket))).first() is None


async def test_api_errors_unknown_ticket_wrong_role_invalid_transition_stale_version(client: Any) -> None:
    await staff(client, "agent-a", Role.AGENT, skills="物流")
    await staff(client, "agent-b", Role.AGENT, skills="物流", online=False)
    await say(client, "快递丢件了，我要投诉，订单号 DD2026112300002", "e1")
    await say(client, "1", "e2")
    await say(client, "确认", "e3")
    ticket = await one_ticket(client)
    base = f"/api/v1/tickets/{ticket.id}"

    unauthenticated = await client.get(base)
    assert unauthenticated.status == 401
    b = await sign_in(client, "agent-b")
    missing = await client.get("/api/v1/tickets/999999", headers=b)
    assert missing.status == 404 and (await missing.json())["code"] == "not_found"
    not_mine = await client.post(f"{base}/resolve", json={"note": "x"}, headers=b)
    assert not_mine.status == 403
    lead_only = await client.post(f"{base}/reassign", json={"assignee_id": 1}, headers=b)
    assert lead_only.status == 403
    report = await client.get(f"/api/v1/reports/complaints?{_around_today()}", headers=b)
    assert report.status == 403

    a = await sign_in(client, "agent-a")
    invalid = await client.post(f"{base}/close", json={"root_cause": "x", "resolution_code": "y"}, headers=a)
    assert invalid.status == 409 and (await invalid.json())["code"] == "invalid_transition"
    seen = (await (await client.get(base, headers=a)).json())["ticket"]["version"]
    ok = await client.post(f"{base}/transition", json={"to": "in_progress", "version": seen}, headers=a)
    assert ok.status == 200 and (await ok.json())["version"] == seen + 1
    stale = await client.post(f"{base}/transition", json={"to": "waiting_customer", "version": seen}, headers=a)
    assert stale.status == 409 and (await stale.json())["code"] == "conflict"
    async with client.app[db_key]() as session:
        assert (await session.get(Ticket, ticket.id)).status == TicketStatus.IN_PROGRESS  # type: ignore[union-attr]

    boss = await staff(client, "boss-r", Role.SUPERVISOR)
    assert boss
    lead = await sign_in(client, "boss-r")
    report = await client.get(f"/api/v1/reports/complaints?{_around_today()}", headers=lead)
    body = await report.json()
    assert report.status == 200 and body["total"] == 1 and body["by_channel"] == {"webchat": 1}
    created = await client.post(
        "/api/v1/tickets", json={"customer_id": ticket.customer_id, "description": "电话投诉：客服态度差"},
        headers=lead,
    )  # fmt: skip
    assert created.status == 201 and (await created.json())["category"] == "服务态度"
    bad = await client.post("/api/v1/tickets", json={"customer_id": 424242, "description": "x"}, headers=lead)
    assert bad.status == 404


async def test_user_row_sanity(client: Any) -> None:
    """The staff helper really puts agents online (the loop above depends on it)."""
    uid = await staff(client, "online-check", Role.AGENT)
    async with client.app[db_key]() as session:
        user = await session.get(User, uid)
    assert user is not None and user.presence == Presence.ONLINE


async def test_abandoned_flow_ends_with_one_notice_even_with_two_workers(client: Any) -> None:
    import asyncio
    from datetime import timedelta

    from bot.web.tickets import expire_flows
    from models import Conversation, utcnow

    await say(client, "我要投诉你们的客服", "t1")
    async with transaction(client.app[db_key]) as session:
        conversation = (await session.exec(select(Conversation))).one()
        assert conversation.flow == "complaint"
        conversation.flow_state = {**conversation.flow_state, "updated_at": (utcnow() - timedelta(hours=1)).isoformat()}
    ended = await asyncio.gather(expire_flows(client.app), expire_flows(client.app))
    assert sorted(ended) == [0, 1]
    texts = await history(client)
    assert sum("等待时间过长" in t for t in texts) == 1
    async with client.app[db_key]() as session:
        assert (await session.exec(select(Conversation))).one().flow is None
    # the next message is read afresh, not as an answer to the old question
    replies = await say(client, "运费怎么算", "t2")
    assert replies and "订单号" not in replies[0]


async def test_complaining_again_about_a_resolved_order_reopens_it(client: Any) -> None:
    agent_id = await staff(client, "re-agent", Role.AGENT, skills="物流")
    await say(client, "快递丢件了，我要投诉，订单号 DD2026112300003", "r1")
    await say(client, "1", "r2")
    await say(client, "确认", "r3")
    ticket = await one_ticket(client)
    assert ticket.assignee_id == agent_id
    headers = await sign_in(client, "re-agent")
    resp = await client.post(f"/api/v1/tickets/{ticket.id}/resolve", json={"note": "已补发"}, headers=headers)
    assert resp.status == 200
    assert await say(client, "根本没收到补发！我要投诉！订单号 DD2026112300003", "r4") == []
    again = await one_ticket(client)
    assert again.status == TicketStatus.REOPENED and again.reopen_count == 1
    assert sum("重新打开" in t for t in await history(client)) == 1


async def test_two_concurrent_updates_of_one_ticket_one_wins_one_gets_409(client: Any) -> None:
    import asyncio

    await staff(client, "lead-c", Role.SUPERVISOR)
    await say(client, "客服态度太差，我要投诉，订单号 DD2026112300005", "v1")
    await say(client, "1", "v2")
    await say(client, "确认", "v3")
    ticket = await one_ticket(client)
    headers = await sign_in(client, "lead-c")
    base = f"/api/v1/tickets/{ticket.id}/triage"
    bodies = [
        {"severity": "P1", "note": "媒体关注", "version": ticket.version},
        {"category": "其他", "note": "重新归类", "version": ticket.version},
    ]
    responses = await asyncio.gather(*(client.patch(base, json=b, headers=headers) for b in bodies))
    statuses = sorted(r.status for r in responses)
    assert statuses == [200, 409], [await r.text() for r in responses]
    winner = next(i for i, r in enumerate(responses) if r.status == 200)
    after = await one_ticket(client)
    assert after.version == ticket.version + 1
    if winner == 0:
        assert after.severity == Severity.P1 and after.category == ticket.category
    else:
        assert after.category == "其他" and after.severity == ticket.severity


async def test_angry_words_without_trigger_no_order_and_a_bad_order_number_still_end_in_a_ticket(client: Any) -> None:
    first = await say(client, "我要投诉！快递一直不发货", "n1")
    assert "订单号" in first[0]
    assert "格式" in (await say(client, "DD12", "n2"))[0]  # one retry for a mistyped number
    assert "联系" in (await say(client, "找不到了", "n3"))[0]  # second miss: go on without one
    await say(client, "13812345678", "n4")
    summary = await say(client, "确认", "n5")
    ticket = await one_ticket(client)
    assert ticket.order_no is None and ticket.contact_phone == "13812345678" and ticket.contact_preference == "phone"
    assert ticket.category == "物流配送" and ticket.number in summary[0]
