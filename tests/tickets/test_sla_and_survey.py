"""SLA sweep with a controlled clock (warning, breach -> escalation, waiting reminders, auto-close),
two sweepers at once, satisfaction answers, and the complaint report."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlmodel import col, select

from models import Message, Role
from models.ticket import Severity, SurveyResponse, TicketEvent, TicketStatus
from scrm import reports, surveys, tickets
from scrm.audit import Actor
from scrm.db import SessionFactory, make_engine, make_session_factory, transaction
from scrm.errors import InvalidTransition
from scrm.ticket_sla import sweep
from scrm.tickets import TicketPolicy
from tests.tickets.conftest import Clock, actor_of, aware, make_customer, make_user

BOT = Actor.system("bot")


async def _open(db: SessionFactory, policy: TicketPolicy, text: str = "快递丢件了", **kw: object) -> int:
    async with transaction(db) as s:
        customer = await make_customer(s, visitor=f"v-{text}")
        t = await tickets.open_ticket(s, policy=policy, customer_id=customer.id, description=text, actor=BOT, **kw)
        assert t.id is not None
        return t.id


async def _events(db: SessionFactory, kind: str) -> list[TicketEvent]:
    async with db() as s:
        return list((await s.exec(select(TicketEvent).where(TicketEvent.kind == kind))).all())


async def test_warning_at_80_percent_then_breach_escalates_once(
    db: SessionFactory, policy: TicketPolicy, clock: Clock
) -> None:
    clock.set(2026, 11, 27, 17, 0)  # Friday 17:00; P3 first response 2 business hours -> Monday 10:00
    async with transaction(db) as s:
        boss = await make_user(s, "boss", role=Role.SUPERVISOR)
    ticket_id = await _open(db, policy)
    async with db() as s:
        t = await tickets.get_ticket(s, ticket_id)
        assert t.severity == Severity.P3 and t.status == TicketStatus.TRIAGED  # nobody online
        assert aware(t.first_response_due) == clock.set(2026, 11, 30, 10, 0)
        assert aware(t.first_response_warn_at) == clock.set(2026, 11, 30, 9, 36)

    clock.set(2026, 11, 28, 12, 0)  # Saturday: no business time passes
    assert (await sweep(db, policy)).warned == 0
    clock.set(2026, 11, 30, 9, 40)
    assert (await sweep(db, policy)).as_dict()["warned"] == 1
    assert (await sweep(db, policy)).warned == 0  # once
    clock.set(2026, 11, 30, 10, 5)
    published: list[tuple[str, dict]] = []

    async def publish(topic: str, data: dict) -> None:
        published.append((topic, data))

    result = await sweep(db, policy, publish=publish)
    assert result.escalated == 1
    assert ("ticket.escalated", published[0][1]) in published or published[0][0] == "ticket.escalated"
    async with db() as s:
        t = await tickets.get_ticket(s, ticket_id)
        assert t.severity == Severity.P2 and t.escalated_to_id == boss.id and t.escalation_level == 1
        assert aware(t.first_response_breached_at) == clock()
    assert (await sweep(db, policy)).escalated == 0
    assert len(await _events(db, "escalated")) == 1
    assert len(await _events(db, "sla_warning")) == 1


async def test_two_sweepers_at_once_escalate_each_ticket_once(
    db: SessionFactory, database_url: str, policy: TicketPolicy, clock: Clock
) -> None:
    clock.set(2026, 11, 23, 10, 0)
    ids = [await _open(db, policy, f"快递丢件{i}") for i in range(6)]
    clock.set(2026, 12, 10, 10, 0)  # every first-response and resolution target long past
    engines = [make_engine(database_url), make_engine(database_url)]
    try:
        factories = [make_session_factory(e) for e in engines]
        results = await asyncio.gather(*(sweep(f, policy) for f in factories))
    finally:
        for e in engines:
            await e.dispose()
    escalations = await _events(db, "escalated")
    per_ticket = {i: [e for e in escalations if e.ticket_id == i] for i in ids}
    # each ticket: one escalation for the first-response breach and one for the resolution breach
    assert all(len(v) == 2 for v in per_ticket.values()), {k: len(v) for k, v in per_ticket.items()}
    assert sum(r.escalated for r in results) == 12
    async with db() as s:
        for i in ids:
            t = await tickets.get_ticket(s, i)
            assert t.escalation_level == 2 and t.severity == Severity.P1


async def test_waiting_customer_reminder_then_auto_close(
    db: SessionFactory, policy: TicketPolicy, clock: Clock
) -> None:
    async with transaction(db) as s:
        agent = await make_user(s, "li", skills="物流")
    ticket_id = await _open(db, policy)
    me = actor_of(agent)
    async with transaction(db) as s:
        t = await tickets.get_ticket(s, ticket_id)
        await tickets.transition(s, policy=policy, ticket=t, to=TicketStatus.IN_PROGRESS, actor=me)
        await tickets.transition(s, policy=policy, ticket=t, to=TicketStatus.WAITING_CUSTOMER, actor=me)
    clock.advance(hours=25)
    assert (await sweep(db, policy)).reminded == 1
    assert (await sweep(db, policy)).reminded == 0
    clock.advance(days=3)
    assert (await sweep(db, policy)).auto_closed == 1
    async with db() as s:
        t = await tickets.get_ticket(s, ticket_id)
        assert t.status == TicketStatus.CLOSED
        texts = [m.text for m in (await s.exec(select(Message).order_by(col(Message.id)))).all()]
    assert sum("还在等待您的回复" in x and "3 天后" in x for x in texts) == 1
    assert sum("未收到回复已自动关闭" in x for x in texts) == 1


@pytest.mark.parametrize(
    ("text", "score", "resolved"),
    [
        ("5", 5, None),
        ("５分 很快就处理好了", 5, None),
        ("2，还是没收到货", 2, None),
        ("三星", 3, None),
        ("非常满意", 5, None),
        ("没解决", None, False),
        ("1 没解决", 1, False),
    ],
)
def test_read_csat(text: str, score: int | None, resolved: bool | None) -> None:
    answer = surveys.read_csat(text, ["没解决"])
    assert answer is not None and (answer.score, answer.resolved) == (score, resolved)


@pytest.mark.parametrize("text", ["我想问下满意度调查怎么填写才好呢请问", "12345678901", "5天了还没到", "怎么退货", ""])
def test_read_csat_ignores_other_messages(text: str) -> None:
    assert surveys.read_csat(text, ["没解决"]) is None


async def test_survey_low_reopens_and_escalates_high_closes_and_report_adds_up(
    db: SessionFactory, policy: TicketPolicy, clock: Clock
) -> None:
    clock.set(2026, 11, 23, 10, 0)
    async with transaction(db) as s:
        agent = await make_user(s, "li", skills="物流")
        await make_user(s, "boss", role=Role.SUPERVISOR)
    ticket_id = await _open(db, policy, channel="webchat")
    me = actor_of(agent)
    async with transaction(db) as s:
        t = await tickets.get_ticket(s, ticket_id)
        clock.advance(minutes=30)
        await tickets.transition(s, policy=policy, ticket=t, to=TicketStatus.IN_PROGRESS, actor=me)
        clock.advance(hours=2)
        await tickets.resolve(s, policy=policy, ticket=t, actor=me, note="已补发", root_cause="仓库漏发",
                              resolution_code="reship")  # fmt: skip
        await surveys.record_csat(s, policy=policy, ticket=t, answer=surveys.read_csat("2 还没到", ["没解决"]))
        assert t.status == TicketStatus.REOPENED and t.severity == Severity.P2 and t.escalation_level == 1
        with pytest.raises(InvalidTransition):  # no survey pending any more
            await surveys.record_csat(s, policy=policy, ticket=t, answer=surveys.CsatAnswer(5, None, ""))
        clock.advance(hours=1)
        await tickets.resolve(s, policy=policy, ticket=t, actor=me, note="已送达")
        await surveys.record_csat(s, policy=policy, ticket=t, answer=surveys.CsatAnswer(5, None, "谢谢"))
        assert t.status == TicketStatus.CLOSED
    async with db() as s:
        answers = (await s.exec(select(SurveyResponse).order_by(col(SurveyResponse.id)))).all()
        assert [(a.kind, a.score, a.ticket_id) for a in answers] == [("csat", 2, ticket_id), ("csat", 5, ticket_id)]
        report = await reports.complaint_report(
            s, start=dt.datetime(2026, 11, 1, tzinfo=dt.UTC), end=dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
            calendar=policy.calendar, now=clock(),
        )  # fmt: skip
    assert report.total == 1 and report.by_category == {"物流配送": 1} and report.by_channel == {"webchat": 1}
    assert report.first_response_business_hours.median_hours == 0.5
    assert report.resolution_business_hours.median_hours == 3.5
    assert report.first_response_sla_met == 1.0 and report.resolution_sla_met == 1.0
    assert report.reopen_rate == 1.0 and report.csat_average == 3.5 and report.csat_satisfied_rate == 0.5
    assert report.top_root_causes == [("仓库漏发", 1)] and report.escalated == 1


async def test_waiting_for_the_customer_pauses_the_resolution_clock(
    db: SessionFactory, policy: TicketPolicy, clock: Clock
) -> None:
    clock.set(2026, 11, 23, 10, 0)  # Monday; P3 resolution 27 business hours -> Thursday 10:00
    async with transaction(db) as s:
        agent = await make_user(s, "li", skills="物流")
    ticket_id = await _open(db, policy)
    async with transaction(db) as s:
        t = await tickets.get_ticket(s, ticket_id)
        due = aware(t.resolution_due)
        assert due == clock.set(2026, 11, 26, 10, 0)
        clock.set(2026, 11, 23, 11, 0)
        await tickets.transition(s, policy=policy, ticket=t, to=TicketStatus.IN_PROGRESS, actor=actor_of(agent))
        await tickets.transition(s, policy=policy, ticket=t, to=TicketStatus.WAITING_CUSTOMER, actor=actor_of(agent))
        clock.set(2026, 11, 23, 15, 0)  # the customer answers 4 business hours later
        await tickets.add_to_ticket(s, policy=policy, ticket=t, actor=surveys.CUSTOMER, text="照片已发")
        assert t.status == TicketStatus.IN_PROGRESS
        assert aware(t.resolution_due) == clock.set(2026, 11, 26, 14, 0)


async def test_an_agent_reply_in_the_conversation_is_the_first_response(
    db: SessionFactory, policy: TicketPolicy, clock: Clock
) -> None:
    from models import Conversation, Sender
    from scrm.interactions import record_outbound

    clock.set(2026, 11, 23, 10, 0)
    async with transaction(db) as s:
        agent = await make_user(s, "li", skills="物流")
        customer = await make_customer(s)
        conversation = (await s.exec(select(Conversation).where(Conversation.customer_id == customer.id))).one()
        t = await tickets.open_ticket(s, policy=policy, customer_id=customer.id, description="快递丢件",
                                      actor=BOT, conversation_id=conversation.id, created_at=clock())  # fmt: skip
        ticket_id = t.id
    async with transaction(db) as s:
        conversation = (await s.exec(select(Conversation))).one()
        reply, _ = await record_outbound(s, conversation=conversation, text="您好，我来跟进", sender=Sender.AGENT,
                                         agent_id=agent.id)  # fmt: skip
        replied_at = aware(reply.created_at)
    clock.set(2026, 12, 1, 10, 0)  # long after the first-response target
    result = await sweep(db, policy)
    assert result.first_responses == 1
    async with db() as s:
        t = await tickets.get_ticket(s, ticket_id)
        assert aware(t.first_response_at) == replied_at and t.first_response_breached_at is None
    escalations = [e.note for e in await _events(db, "escalated")]
    assert len(escalations) == 1 and escalations[0].startswith("解决时限超时")  # not the first response
