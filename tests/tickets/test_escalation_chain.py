"""An escalation never lands on nobody: an online supervisor of the ticket's skill group, any online
supervisor, an online admin, else the shared escalation queue; the customer is told which is true."""

from __future__ import annotations

from sqlmodel import col, select

from models import Message, Presence, Role, User
from models.ticket import Ticket, TicketEvent, TicketStatus
from scrm import tickets
from scrm.audit import Actor
from scrm.db import SessionFactory, transaction
from scrm.tickets import TicketPolicy
from tests.tickets.conftest import make_customer, make_user

CUSTOMER = Actor(id=None, name="customer", role="customer")


async def reopened_after_survey(db: SessionFactory, policy: TicketPolicy, visitor: str) -> Ticket:
    """A complaint about a broken screen (skill group 售后), resolved, then answered "2": reopened."""
    async with transaction(db) as session:
        customer = await make_customer(session, visitor=visitor)
        ticket = await tickets.open_ticket(session, policy=policy, customer_id=customer.id or 0,
                                           description="手机屏幕坏了，质量太差", actor=CUSTOMER, channel="webchat",
                                           notify=False, auto_assign=False)  # fmt: skip
        ticket.status = TicketStatus.RESOLVED
        await tickets.reopen(session, policy=policy, ticket=ticket, actor=CUSTOMER, reason="满意度 2 分")
        return ticket


async def told(db: SessionFactory, ticket: Ticket) -> tuple[str, str]:
    async with db() as session:
        [event] = (await session.exec(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id,
                                                                 TicketEvent.kind == "escalated"))).all()  # fmt: skip
        [text] = (
            await session.exec(
                select(Message.text).where(Message.customer_id == ticket.customer_id,
                                           col(Message.text).contains("重新打开"))
            )
        ).all()  # fmt: skip
    return event.note, text


async def test_the_chain_skill_supervisor_then_any_supervisor_then_admin_then_the_shared_queue(
    db: SessionFactory, policy: TicketPolicy
) -> None:
    async with transaction(db) as session:
        people = {
            "skilled": await make_user(session, "lead-aftersales", role=Role.SUPERVISOR, skills="售后,主管"),
            "other": await make_user(session, "lead-general", role=Role.SUPERVISOR),
            "admin": await make_user(session, "root", role=Role.ADMIN),
        }
        ids = {name: user.id for name, user in people.items()}

    async def online(*names: str) -> None:
        async with transaction(db) as session:
            for name, user_id in ids.items():
                user = await session.get_one(User, user_id)
                user.presence = Presence.ONLINE if name in names else Presence.OFFLINE

    for round_, (present, expected) in enumerate([
        (("skilled", "other", "admin"), ids["skilled"]),
        (("other", "admin"), ids["other"]),
        (("admin",), ids["admin"]),
    ]):  # fmt: skip
        await online(*present)
        ticket = await reopened_after_survey(db, policy, f"v-{round_}")
        assert ticket.skill_group == "售后" and ticket.escalated_to_id == expected
        note, text = await told(db, ticket)
        assert "升级待办队列" not in note and "升级给主管优先处理" in text

    await online()
    ticket = await reopened_after_survey(db, policy, "v-nobody")
    note, text = await told(db, ticket)
    assert ticket.escalated_to_id is None and ticket.escalation_level == 1
    assert "升级待办队列" in note
    assert "主管优先处理队列" in text and "升级给主管" not in text  # the customer hears what is true
    async with db() as session:
        assert [t.id for t in await tickets.escalation_queue(session)] == [ticket.id]
