"""What the ticket pages read: list rows with names and SLA state, and the detail's context.

The verbs and routes live in `bot.web.tickets`; this module only reads. Personal data is shown
as the console shows it (agents see names and phone numbers masked).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, Field
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.web.auth import viewer
from bot.web.console import ConsoleMessage, _console_message, display_name
from models import Customer, Message, User, aware
from models.ticket import (
    OPEN_STATUSES,
    Severity,
    SurveyResponse,
    SurveyResponseRead,
    Ticket,
    TicketEventRead,
    TicketRead,
    TicketStatus,
)
from scrm.privacy import Viewer
from scrm.tickets import TRANSITIONS

S = TicketStatus
SLA_STATUSES = [s for s in OPEN_STATUSES if s != S.WAITING_CUSTOMER]  # the clock stops while waiting for the customer
SlaState = Literal["ok", "due_soon", "breached", "paused", "done"]


class TicketQuery(BaseModel):
    status: TicketStatus | None = None
    category: str | None = Field(None, max_length=16)
    severity: Severity | None = None
    channel: str | None = Field(None, max_length=16)
    assignee_id: int | None = None
    mine: bool = False
    unassigned: bool = False  # open and nobody's: 待分配
    escalated: bool = False  # open and escalated or reopened
    open: bool = False
    sla: Literal["due_soon", "breached"] | None = None
    customer_id: int | None = None
    q: str | None = Field(None, max_length=32)  # ticket number, order number or subject
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0)


class TicketRow(TicketRead):
    customer_name: str
    assignee_name: str | None
    sla_state: SlaState
    sla_due: datetime | None  # the deadline that runs now: first response until answered, then resolution


class CustomerCard(BaseModel):
    id: int
    name: str
    phone: str
    masked: bool
    lifecycle_stage: str
    member_level: str | None
    points: int


class TicketDetail(BaseModel):
    ticket: TicketRow
    events: list[TicketEventRead]
    customer: CustomerCard | None
    messages: list[ConsoleMessage]
    surveys: list[SurveyResponseRead]
    transitions: list[TicketStatus]  # statuses the ticket may move to next


def _breached(now: datetime) -> Any:
    first_pending = sa.and_(col(Ticket.first_response_at).is_(None), col(Ticket.first_response_due) <= now)
    return sa.and_(col(Ticket.status).in_(SLA_STATUSES), sa.or_(first_pending, col(Ticket.resolution_due) <= now))


def _due_soon(now: datetime) -> Any:
    first_warn = sa.and_(col(Ticket.first_response_at).is_(None), col(Ticket.first_response_warn_at) <= now)
    warned = sa.or_(first_warn, col(Ticket.resolution_warn_at) <= now)
    return sa.and_(col(Ticket.status).in_(SLA_STATUSES), warned, sa.not_(_breached(now)))


def filtered(query: TicketQuery, user: User, now: datetime) -> Any:
    """The list query: every filter is a WHERE clause, so paging counts right."""
    where: list[Any] = []
    if query.status is not None:
        where.append(col(Ticket.status) == query.status)
    if query.open or query.unassigned or query.escalated:
        where.append(col(Ticket.status).in_(list(OPEN_STATUSES)))
    if query.category:
        where.append(col(Ticket.category) == query.category)
    if query.severity is not None:
        where.append(col(Ticket.severity) == query.severity)
    if query.channel:
        where.append(col(Ticket.channel) == query.channel)
    if query.mine:
        where.append(col(Ticket.assignee_id) == user.id)
    elif query.unassigned:
        where.append(col(Ticket.assignee_id).is_(None))
    elif query.assignee_id is not None:
        where.append(col(Ticket.assignee_id) == query.assignee_id)
    if query.escalated:
        where.append(sa.or_(col(Ticket.escalation_level) > 0, col(Ticket.reopen_count) > 0))
    if query.sla == "breached":
        where.append(_breached(now))
    elif query.sla == "due_soon":
        where.append(_due_soon(now))
    if query.customer_id is not None:
        where.append(col(Ticket.customer_id) == query.customer_id)
    if query.q:
        like = f"%{query.q.strip()}%"
        where.append(sa.or_(col(Ticket.number).like(like), col(Ticket.order_no).like(like),
                            col(Ticket.subject).like(like)))  # fmt: skip
    return select(Ticket).where(*where)


def sla_of(ticket: Ticket, now: datetime) -> tuple[SlaState, datetime | None]:
    if ticket.status not in OPEN_STATUSES:
        return "done", None
    if ticket.status == S.WAITING_CUSTOMER:
        return "paused", None
    first = ticket.first_response_at is None and ticket.first_response_due is not None
    due = ticket.first_response_due if first else ticket.resolution_due
    warn = ticket.first_response_warn_at if first else ticket.resolution_warn_at
    if due is None:
        return "ok", None
    if aware(due) <= now or (ticket.resolution_due is not None and aware(ticket.resolution_due) <= now):
        return "breached", due
    if warn is not None and aware(warn) <= now:
        return "due_soon", due
    return "ok", due


def masked(read: TicketRead, shown: Viewer) -> TicketRead:
    """A ticket as `shown` may read it: the customer's words and contact phone masked for agents."""
    if shown.full:
        return read
    return read.model_copy(
        update={
            "subject": shown.text(read.subject),
            "description": shown.text(read.description),
            "contact_phone": shown.phone(read.contact_phone) or None,
            "resolution_note": shown.text(read.resolution_note) if read.resolution_note else read.resolution_note,
            "severity_reason": shown.text(read.severity_reason),
        }
    )


async def rows(session: AsyncSession, tickets: list[Ticket], user: User, now: datetime) -> list[TicketRow]:
    customer_ids = {t.customer_id for t in tickets}
    staff_ids = {t.assignee_id for t in tickets if t.assignee_id is not None}
    found = (await session.exec(select(Customer).where(col(Customer.id).in_(customer_ids)))).all()
    customers = {c.id: c for c in found}
    staff = (await session.exec(select(User).where(col(User.id).in_(staff_ids)))).all()
    names = {u.id: u.display_name or u.username for u in staff}
    out = []
    for t in tickets:
        state, due = sla_of(t, now)
        assignee = names.get(t.assignee_id) if t.assignee_id else None
        customer = customers.get(t.customer_id)
        read = masked(TicketRead.model_validate(t), viewer(user, customer.name if customer else None))
        out.append(TicketRow(**read.model_dump(), sla_state=state, sla_due=due,
                             customer_name=display_name(customer, user, t.customer_id),
                             assignee_name=assignee))  # fmt: skip
    return out


async def detail(
    session: AsyncSession, ticket: Ticket, events: list[TicketEventRead], user: User, now: datetime
) -> TicketDetail:
    [row] = await rows(session, [ticket], user, now)
    customer = await session.get(Customer, ticket.customer_id)
    shown = viewer(user, customer.name if customer else None)
    events = [e.model_copy(update={"note": shown.text(e.note), "data": shown.deep(e.data)}) for e in events]
    card = None
    if customer is not None:
        card = CustomerCard(id=customer.id or 0, name=display_name(customer, user, ticket.customer_id),
                            phone=shown.phone(customer.phone), masked=not shown.full,
                            lifecycle_stage=customer.lifecycle_stage, member_level=customer.member_level,
                            points=customer.points)  # fmt: skip
    messages: list[ConsoleMessage] = []
    if ticket.conversation_id is not None:
        found = (
            await session.exec(
                select(Message)
                .where(col(Message.conversation_id) == ticket.conversation_id)
                .order_by(col(Message.id).desc())
                .limit(200)
            )
        ).all()
        messages = [_console_message(m, shown) for m in reversed(found)]
    surveys = (
        await session.exec(
            select(SurveyResponse).where(col(SurveyResponse.ticket_id) == ticket.id).order_by(col(SurveyResponse.id))
        )
    ).all()
    return TicketDetail(
        ticket=row,
        events=events,
        customer=card,
        messages=messages,
        surveys=[SurveyResponseRead.model_validate(s) for s in surveys],
        transitions=sorted(TRANSITIONS[ticket.status]),
    )
