"""Ticket API (`/api/v1/tickets…`, `/api/v1/reports/complaints`) and the ticket scheduler jobs.

Every write runs one scrm verb in one transaction; events are published and the outbox poked
after commit. Domain errors become JSON {code, message}: 404 unknown ticket, 403 wrong role,
409 invalid transition or stale version, 422 bad input.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog
from aiohttp import web
from pydantic import BaseModel, Field
from sqlalchemy.exc import OperationalError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.keys import bus_key, db_key, outbox_key, scheduler_key, settings_key
from bot.web import ticket_views as views
from bot.web.api import STAFF, SUPERVISOR, ApiRouter, Day, path_id
from bot.web.auth import sees_personal, viewer
from bot.web.ticket_views import TicketDetail, TicketQuery, TicketRow
from models import Conversation, Customer, User, aware
from models.ticket import (
    Severity,
    Ticket,
    TicketCreate,
    TicketEventRead,
    TicketRead,
    TicketStatus,
)
from scrm import reports, ticket_sla, tickets
from scrm.audit import Actor
from scrm.calendar import day_bounds
from scrm.db import transaction
from scrm.errors import Conflict, ValidationFailed
from scrm.tickets import TicketPolicy

log = structlog.get_logger(__name__)
router = ApiRouter("tickets")
ticket_policy_key = web.AppKey("ticket_policy", TicketPolicy)
SWEEP_SECONDS = 60


class Versioned(BaseModel):
    version: int | None = None  # the version the client saw; a stale one is a 409


class AssignBody(Versioned):
    assignee_id: int | None = None  # None: pick an online agent of the skill group


class ReassignBody(Versioned):
    assignee_id: int
    note: str = Field("", max_length=500)


class TransitionBody(Versioned):
    to: TicketStatus
    note: str = Field("", max_length=500)


class ResolveBody(Versioned):
    note: str = Field(min_length=1, max_length=2000)
    resolution_code: str | None = Field(None, max_length=32)
    root_cause: str | None = Field(None, max_length=64)


class CloseBody(Versioned):
    root_cause: str | None = Field(None, max_length=64)
    resolution_code: str | None = Field(None, max_length=32)
    note: str = Field("", max_length=500)


class ReopenBody(Versioned):
    reason: str = Field(min_length=1, max_length=500)


class TriageBody(Versioned):
    category: str | None = None
    severity: Severity | None = None
    note: str = Field("", max_length=500)


class NoteBody(BaseModel):
    text: str = Field(min_length=1, max_length=2000)


class ReportQuery(BaseModel):
    from_: Day = Field(alias="from")
    to: Day  # inclusive


class Taxonomy(BaseModel):
    categories: list[str]
    unclassified: str
    severities: list[str]
    statuses: list[str]
    resolution_codes: dict[str, str]  # code -> label
    root_causes: list[str]
    skill_groups: list[str]  # the categories' skills and the supervisors' (what agents' skills should name)


def actor_of(user: User) -> Actor:
    return Actor(id=user.id, name=user.username, role=str(user.role))


async def _after_commit(request: web.Request, events: list[tuple[str, dict[str, Any]]]) -> None:
    for topic, data in events:
        await request.app[bus_key].publish(topic, data)
    request.app[outbox_key].poke()


async def _shown(session: AsyncSession, user: User, rows: Sequence[Ticket]) -> list[TicketRead]:
    """Tickets as `user` may see them (the customer's words and contact phone masked for agents)."""
    if sees_personal(user):
        return [TicketRead.model_validate(t) for t in rows]
    ids = {t.customer_id for t in rows}
    names = dict((await session.exec(select(Customer.id, Customer.name).where(col(Customer.id).in_(ids)))).all())
    return [views.masked(TicketRead.model_validate(t), viewer(user, names.get(t.customer_id))) for t in rows]


async def _run(request: web.Request, user: User, verb: Any, **kwargs: Any) -> TicketRead:
    """Load the ticket, run one verb in one transaction, publish after commit."""
    policy = request.app[ticket_policy_key]
    try:
        async with transaction(request.app[db_key]) as session:
            ticket = await tickets.get_ticket(session, path_id(request, "ticket_id"))
            await verb(session, policy=policy, ticket=ticket, actor=actor_of(user), **kwargs)
            events = tickets.take_events(session)
            [read] = await _shown(session, user, [ticket])
    except OperationalError as exc:
        if tickets.is_sqlite_write_race(exc):  # another request changed this ticket first
            raise Conflict(tickets.CONCURRENT) from None
        raise
    await _after_commit(request, events)
    return read


@router.post("/tickets", roles=STAFF, body=TicketCreate, response=TicketRead, status=201)
async def create_ticket(request: web.Request, user: User, body: TicketCreate) -> TicketRead:
    """Open a ticket for a customer (console or integration); triaged and assigned like the bot's."""
    policy = request.app[ticket_policy_key]
    async with transaction(request.app[db_key]) as session:
        conversation = await _latest_conversation(session, body.customer_id)
        ticket = await tickets.open_ticket(
            session,
            policy=policy,
            customer_id=body.customer_id,
            description=body.description,
            actor=actor_of(user),
            channel=body.channel,
            conversation_id=conversation.id if conversation else None,
            order_no=body.order_no,
            subject=body.subject,
            category=body.category,
            severity=body.severity,
            contact_preference=body.contact_preference,
            contact_phone=body.contact_phone,
        )
        events = tickets.take_events(session)
        [read] = await _shown(session, user, [ticket])
    await _after_commit(request, events)
    return read


@router.get("/tickets", roles=STAFF, query=TicketQuery, response=list[TicketRow])
async def list_tickets(request: web.Request, user: User, query: TicketQuery) -> list[TicketRow]:
    """Tickets, newest first, filtered (saved views: mine, unassigned, SLA due soon / breached, escalated)."""
    now = request.app[ticket_policy_key].now()
    stmt = views.filtered(query, user, now).order_by(col(Ticket.id).desc()).offset(query.offset).limit(query.limit)
    async with request.app[db_key]() as session:
        return await views.rows(session, list((await session.exec(stmt)).all()), user, now)


@router.get("/tickets/taxonomy", roles=STAFF, response=Taxonomy)
async def taxonomy(request: web.Request, user: User) -> Taxonomy:
    """Categories, severities and statuses for the console's pickers."""
    config = request.app[ticket_policy_key].config
    skills = [c.skill for c in config.taxonomy.categories.values() if c.skill]
    return Taxonomy(
        categories=list(config.taxonomy.categories),
        unclassified=config.taxonomy.unclassified,
        severities=[s.value for s in Severity],
        statuses=[s.value for s in TicketStatus],
        resolution_codes=dict(config.taxonomy.resolution_codes),
        root_causes=list(config.taxonomy.root_causes),
        skill_groups=list(dict.fromkeys([*skills, config.assignment.supervisor_skill])),
    )


@router.get("/tickets/{ticket_id}", roles=STAFF, response=TicketDetail)
async def get_ticket(request: web.Request, user: User) -> TicketDetail:
    """One ticket with its history (who, when, from, to, note), customer card, conversation and surveys."""
    async with request.app[db_key]() as session:
        ticket = await tickets.get_ticket(session, path_id(request, "ticket_id"))
        events = await tickets.list_events(session, path_id(request, "ticket_id"))
        reads = [TicketEventRead.model_validate(e) for e in events]
        return await views.detail(session, ticket, reads, user, request.app[ticket_policy_key].now())


@router.post("/tickets/{ticket_id}/assign", roles=STAFF, body=AssignBody, response=TicketRead)
async def assign(request: web.Request, user: User, body: AssignBody) -> TicketRead:
    """Assign a triaged/reopened ticket (to yourself as an agent; anyone as a supervisor)."""
    return await _run(request, user, tickets.assign, assignee_id=body.assignee_id,
                      expected_version=body.version)  # fmt: skip


@router.post("/tickets/{ticket_id}/reassign", roles=SUPERVISOR, body=ReassignBody, response=TicketRead)
async def reassign(request: web.Request, user: User, body: ReassignBody) -> TicketRead:
    """Move an open ticket to another agent (supervisors)."""
    return await _run(request, user, tickets.reassign, assignee_id=body.assignee_id,
                      note=body.note, expected_version=body.version)  # fmt: skip


@router.post("/tickets/{ticket_id}/transition", roles=STAFF, body=TransitionBody, response=TicketRead)
async def transition(request: web.Request, user: User, body: TransitionBody) -> TicketRead:
    """Start work (in_progress), wait for the customer, or resume."""
    return await _run(request, user, tickets.transition, to=body.to, note=body.note,
                      expected_version=body.version)  # fmt: skip


@router.post("/tickets/{ticket_id}/resolve", roles=STAFF, body=ResolveBody, response=TicketRead)
async def resolve(request: web.Request, user: User, body: ResolveBody) -> TicketRead:
    """Resolve: the customer is told what was done and asked for a 1–5 rating."""
    return await _run(request, user, tickets.resolve, note=body.note,
                      resolution_code=body.resolution_code, root_cause=body.root_cause,
                      expected_version=body.version)  # fmt: skip


@router.post("/tickets/{ticket_id}/close", roles=STAFF, body=CloseBody, response=TicketRead)
async def close(request: web.Request, user: User, body: CloseBody) -> TicketRead:
    """Close with root cause (归因) and resolution code."""
    return await _run(request, user, tickets.close, root_cause=body.root_cause,
                      resolution_code=body.resolution_code, note=body.note,
                      expected_version=body.version)  # fmt: skip


@router.post("/tickets/{ticket_id}/reopen", roles=STAFF, body=ReopenBody, response=TicketRead)
async def reopen(request: web.Request, user: User, body: ReopenBody) -> TicketRead:
    """Reopen a resolved or closed ticket (escalated to a supervisor)."""
    return await _run(request, user, tickets.reopen, reason=body.reason,
                      expected_version=body.version)  # fmt: skip


@router.patch("/tickets/{ticket_id}/triage", roles=STAFF, body=TriageBody, response=TicketRead)
async def retriage(request: web.Request, user: User, body: TriageBody) -> TicketRead:
    """Set the category (e.g. out of 待分类) or override severity, with a note."""
    if body.category is None and body.severity is None:
        raise ValidationFailed("请指定类别或级别")
    return await _run(request, user, tickets.update_triage, category=body.category,
                      severity=body.severity, note=body.note, expected_version=body.version)  # fmt: skip


@router.post("/tickets/{ticket_id}/notes", roles=STAFF, body=NoteBody, response=TicketRead, status=201)
async def add_note(request: web.Request, user: User, body: NoteBody) -> TicketRead:
    """An internal note on the ticket (never shown to the customer)."""
    return await _run(request, user, tickets.add_to_ticket, text=body.text)


@router.get("/reports/complaints", roles=SUPERVISOR, query=ReportQuery, response=reports.ComplaintReport)
async def complaint_report(request: web.Request, user: User, query: ReportQuery) -> reports.ComplaintReport:
    """Complaint report for tickets opened from `from` to `to` (inclusive, local dates)."""
    if query.to < query.from_:
        raise ValidationFailed("结束日期早于开始日期")
    policy = request.app[ticket_policy_key]
    start, end = day_bounds(query.from_, query.to, policy.calendar.tz)
    async with request.app[db_key]() as session:
        return await reports.complaint_report(session, start=start, end=end, calendar=policy.calendar,
                                              now=policy.now())  # fmt: skip


async def _latest_conversation(session: AsyncSession, customer_id: int) -> Conversation | None:
    from scrm import interactions

    return await interactions.open_conversation_for(session, customer_id)


# ----- scheduler jobs -------------------------------------------------------------------------


async def run_sweep(app: web.Application) -> dict[str, int]:
    """SLA warnings/breaches, waiting-customer reminders/auto-close, pending assignment."""
    result = await ticket_sla.sweep(app[db_key], app[ticket_policy_key], publish=app[bus_key].publish)
    if result.ticket_ids:
        app[outbox_key].poke()
    return result.as_dict()


async def expire_flows(app: web.Application) -> int:
    """End complaint flows the customer abandoned, telling them once (claimed by a conditional UPDATE)."""
    policy = app[ticket_policy_key]
    now = policy.now()
    limit = timedelta(minutes=policy.config.flow.timeout_minutes)
    async with app[db_key]() as session:
        rows = (await session.exec(select(Conversation).where(Conversation.flow == "complaint"))).all()
        stale = [c.id for c in rows if _flow_updated(c) is not None and now - _flow_updated(c) > limit]  # type: ignore[operator]
    ended = 0
    for conversation_id in stale:
        async with transaction(app[db_key]) as session:
            claimed = await session.exec(  # type: ignore[call-overload]
                sa.update(Conversation)
                .where(col(Conversation.id) == conversation_id, col(Conversation.flow) == "complaint")
                .values(flow=None, flow_state={})
                .execution_options(synchronize_session=False)
            )
            if claimed.rowcount != 1:
                continue
            conversation = await session.get(Conversation, conversation_id)
            assert conversation is not None
            from scrm import interactions

            await interactions.record_outbound(session, conversation=conversation, text=policy.config.text("timed_out"))
            ended += 1
    if ended:
        app[outbox_key].poke()
    return ended


def _flow_updated(conversation: Conversation) -> datetime | None:
    raw = (conversation.flow_state or {}).get("updated_at")
    return aware(datetime.fromisoformat(raw)) if raw else None


def setup(app: web.Application) -> None:
    settings = app[settings_key]
    app[ticket_policy_key] = TicketPolicy.load(settings.tickets_config, data_dir=settings.data_dir)
    router.install(app)
    scheduler = app[scheduler_key]
    scheduler.add_job(run_sweep, "interval", seconds=SWEEP_SECONDS, kwargs={"app": app}, id="tickets-sweep",
                      coalesce=True, max_instances=1)  # fmt: skip
    scheduler.add_job(expire_flows, "interval", seconds=SWEEP_SECONDS, kwargs={"app": app},
                      id="complaint-flow-expiry", coalesce=True, max_instances=1)  # fmt: skip
