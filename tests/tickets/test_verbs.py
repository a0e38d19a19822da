"""Ticket verbs on a real database: open + triage + SLA, assignment, the status machine, roles, versions."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlmodel import col, select

from models import AuditLog, Message, OutboxMessage, Presence, Role
from models.scrm import CustomerValue, Order
from models.ticket import Severity, TicketEvent, TicketStatus
from scrm import tickets
from scrm.audit import Actor
from scrm.db import SessionFactory, transaction
from scrm.errors import Conflict, Forbidden, InvalidTransition, NotFound, ValidationFailed
from scrm.tickets import TicketPolicy
from tests.tickets.conftest import CST, Clock, actor_of, aware, make_customer, make_user

BOT = Actor.system("bot")
KETTLE = "热水壶质量太差，用了两天就坏了还漏电，我要打12315投诉"


async def test_open_triages_sets_business_hour_sla_assigns_and_tells_the_customer(
    db: SessionFactory, policy: TicketPolicy, clock: Clock
) -> None:
    opened = clock.set(2026, 9, 30, 17, 0)  # the day before the National Day week
    async with transaction(db) as s:
        customer = await make_customer(s)
        await make_user(s, "wang", skills="物流")
        li = await make_user(s, "li", skills="售后,客服")
        ticket = await tickets.open_ticket(
            s, policy=policy, customer_id=customer.id, description=KETTLE, actor=BOT, channel="webchat",
            order_no="DD2026093000001",
        )  # fmt: skip
        ticket_id = ticket.id

    async with db() as s:
        t = await tickets.get_ticket(s, ticket_id)
        assert t.number == f"20260930-{ticket_id:05d}"
        assert t.category == "商品质量" and t.category_source == "keyword" and t.category_confidence >= 0.9
        assert t.severity == Severity.P1
        assert "安全/健康" in t.severity_reason and "12315" in t.severity_reason
        # P1: 30 min first response -> 17:30 the same evening; 4 h resolution -> 1 h before the
        # holiday, 3 h after it: Oct 8 12:00
        assert aware(t.first_response_due) == opened + dt.timedelta(minutes=30)
        assert aware(t.resolution_due) == dt.datetime(2026, 10, 8, 12, 0, tzinfo=CST)
        assert t.status == TicketStatus.ASSIGNED and t.assignee_id == li.id and t.skill_group == "售后"
        kinds = [(e.kind, e.from_status, e.to_status) for e in await tickets.list_events(s, ticket_id)]
        assert kinds[:3] == [("opened", None, "new"), ("transition", "new", "triaged"), ("triaged", None, None)]
        assert ("transition", "triaged", "assigned") in kinds
        notices = (await s.exec(select(Message).where(Message.customer_id == customer.id))).all()
        assert len(notices) == 1 and t.number in notices[0].text and "10月" not in notices[0].text
        assert (await s.exec(select(OutboxMessage))).one().message_id == notices[0].id
        audit = (await s.exec(select(AuditLog).where(AuditLog.object_id == str(ticket_id)))).all()
        assert {a.action for a in audit} == {"ticket.open", "ticket.assign"}


async def test_low_confidence_goes_to_unclassified_and_nobody_online_stays_triaged(
    db: SessionFactory, policy: TicketPolicy
) -> None:
    async with transaction(db) as s:
        customer = await make_customer(s)
        await make_user(s, "away", presence=Presence.AWAY)
        t = await tickets.open_ticket(
            s, policy=policy, customer_id=customer.id, description="我要投诉你们，太让人失望了", actor=BOT
        )
        assert t.category == "待分类" and t.status == TicketStatus.TRIAGED and t.assignee_id is None
        assert t.severity == Severity.P3 and t.severity_reason == "默认级别"


async def test_severity_rules_member_repeat_and_order_amount(db: SessionFactory, policy: TicketPolicy) -> None:
    async with transaction(db) as s:
        vip = await make_customer(s, member_level="钻石")
        plain = await make_customer(s, visitor="v-2")
        rich = await make_customer(s, visitor="v-3")
        s.add(CustomerValue(customer_id=rich.id, tier="高价值"))
        s.add(Order(customer_id=plain.id, order_no="BIG001", amount=Decimal("2999.00"),
                    ordered_at=policy.now()))  # fmt: skip
        await s.flush()
        a = await tickets.open_ticket(s, policy=policy, customer_id=vip.id, description="快递一直没收到", actor=BOT)
        assert a.severity == Severity.P2 and "会员等级 钻石" in a.severity_reason
        b = await tickets.open_ticket(s, policy=policy, customer_id=rich.id, description="快递没收到", actor=BOT)
        assert "客户价值 高价值" in b.severity_reason
        c = await tickets.open_ticket(
            s, policy=policy, customer_id=plain.id, description="物流太慢", actor=BOT, order_no="BIG001"
        )
        assert c.severity == Severity.P2 and "订单金额 2999.00" in c.severity_reason
        again = await tickets.open_ticket(s, policy=policy, customer_id=vip.id, description="又没收到货", actor=BOT)
        assert "30 天内已投诉 1 次" in again.severity_reason


async def test_full_status_machine_with_reopen_escalation_and_roles(
    db: SessionFactory, policy: TicketPolicy, clock: Clock
) -> None:
    async with transaction(db) as s:
        customer = await make_customer(s)
        agent = await make_user(s, "li", skills="物流")
        other = await make_user(s, "zhao", skills="物流", presence=Presence.OFFLINE)
        boss = await make_user(s, "boss", role=Role.SUPERVISOR)
        t = await tickets.open_ticket(s, policy=policy, customer_id=customer.id, description="快递丢件了", actor=BOT)
        assert t.severity == Severity.P3 and t.assignee_id == agent.id
        ticket_id = t.id

    me, them, lead = actor_of(agent), actor_of(other), actor_of(boss)
    async with transaction(db) as s:
        t = await tickets.get_ticket(s, ticket_id)
        with pytest.raises(Forbidden):
            await tickets.resolve(s, policy=policy, ticket=t, actor=them, note="x")
        with pytest.raises(Forbidden):
            await tickets.reassign(s, policy=policy, ticket=t, actor=me, assignee_id=other.id)
        with pytest.raises(InvalidTransition):
            await tickets.close(s, policy=policy, ticket=t, actor=me, root_cause="a", resolution_code="b")
        clock.advance(minutes=20)
        await tickets.transition(s, policy=policy, ticket=t, to=TicketStatus.IN_PROGRESS, actor=me)
        await tickets.transition(s, policy=policy, ticket=t, to=TicketStatus.WAITING_CUSTOMER, actor=me)
        await tickets.add_to_ticket(s, policy=policy, ticket=t, actor=Actor(None, "customer", "customer"), text="补充")
        assert t.status == TicketStatus.IN_PROGRESS and aware(t.first_response_at) == clock()
        with pytest.raises(ValidationFailed):
            await tickets.resolve(s, policy=policy, ticket=t, actor=me, note="  ")
        await tickets.resolve(s, policy=policy, ticket=t, actor=me, note="已补发", root_cause="仓库漏发")
        with pytest.raises(InvalidTransition):
            await tickets.transition(s, policy=policy, ticket=t, to=TicketStatus.IN_PROGRESS, actor=me)
        await tickets.reopen(s, policy=policy, ticket=t, actor=BOT, reason="客户说没收到补发")
        assert t.status == TicketStatus.REOPENED and t.reopen_count == 1
        assert t.severity == Severity.P2 and t.escalated_to_id == boss.id and t.escalation_level == 1
        await tickets.reassign(s, policy=policy, ticket=t, actor=lead, assignee_id=other.id, note="换人跟进")
        assert t.assignee_id == other.id
        await tickets.resolve(s, policy=policy, ticket=t, actor=them, note="已退款")
        with pytest.raises(ValidationFailed):  # staff close needs a resolution code
            await tickets.close(s, policy=policy, ticket=t, actor=them)
        await tickets.close(s, policy=policy, ticket=t, actor=them, resolution_code="refund")
        assert t.status == TicketStatus.CLOSED and t.root_cause == "仓库漏发"

    async with db() as s:
        texts = [m.text for m in (await s.exec(select(Message).order_by(col(Message.id)))).all()]
        kinds = [k for k in ("受理", "跟进处理中", "处理完毕", "重新打开", "处理完毕", "已关闭")]
        assert len(texts) == len(kinds)
        assert all(k in text for k, text in zip(kinds, texts, strict=True))
        assert sum("跟进处理中" in text for text in texts) == 1  # once, despite two in_progress moves
        events = (await s.exec(select(TicketEvent).where(TicketEvent.kind == "escalated"))).all()
        assert len(events) == 1 and events[0].data["severity_to"] == "P2"


async def test_unknown_ticket_and_unknown_customer(db: SessionFactory, policy: TicketPolicy) -> None:
    async with db() as s:
        with pytest.raises(NotFound):
            await tickets.get_ticket(s, 999)
        with pytest.raises(NotFound):
            await tickets.open_ticket(s, policy=policy, customer_id=999, description="x", actor=BOT)
        with pytest.raises(ValidationFailed):
            await tickets.open_ticket(s, policy=policy, customer_id=1, description="x", actor=BOT, category="不存在")


async def test_concurrent_updates_conflict_without_losing_either(db: SessionFactory, policy: TicketPolicy) -> None:
    async with transaction(db) as s:
        customer = await make_customer(s)
        agent = await make_user(s, "li")
        boss = await make_user(s, "boss", role=Role.SUPERVISOR)
        t = await tickets.open_ticket(s, policy=policy, customer_id=customer.id, description="快递丢件", actor=BOT)
        ticket_id, seen = t.id, t.version

    # an explicit stale version from a client
    async with db() as s:
        t = await tickets.get_ticket(s, ticket_id)
        with pytest.raises(Conflict):
            await tickets.transition(
                s, policy=policy, ticket=t, to=TicketStatus.IN_PROGRESS, actor=actor_of(agent),
                expected_version=seen - 1,
            )  # fmt: skip

    # two sessions read the same version; the second writer loses with a Conflict
    s1, s2 = db(), db()
    try:
        t1 = await tickets.get_ticket(s1, ticket_id)
        t2 = await tickets.get_ticket(s2, ticket_id)
        await s1.rollback()
        await s2.rollback()
        t1 = await tickets.get_ticket(s1, ticket_id)
        t2 = await tickets.get_ticket(s2, ticket_id)
        assert t1.version == t2.version == seen
        await tickets.update_triage(s1, policy=policy, ticket=t1, actor=actor_of(boss), category="物流配送")
        await s1.commit()
        with pytest.raises(Conflict):
            await tickets.update_triage(s2, policy=policy, ticket=t2, actor=actor_of(boss), severity=Severity.P1)
        await s2.rollback()
    finally:
        await s1.close()
        await s2.close()
    async with db() as s:
        t = await tickets.get_ticket(s, ticket_id)
        assert t.category == "物流配送" and t.category_source == "agent" and t.version == seen + 1


async def test_least_loaded_then_round_robin(db: SessionFactory, policy: TicketPolicy) -> None:
    async with transaction(db) as s:
        customer = await make_customer(s)
        a = await make_user(s, "a", skills="物流", max_concurrent=2)
        b = await make_user(s, "b", skills="物流", max_concurrent=2)
        got = []
        for i in range(5):
            t = await tickets.open_ticket(s, policy=policy, customer_id=customer.id, description=f"快递{i}没收到",
                                          actor=BOT)  # fmt: skip
            got.append(t.assignee_id)
    assert got == [a.id, b.id, a.id, b.id, None]  # capacity 2 each, the fifth waits
