"""Complaint tickets: the domain verbs.

Every verb validates, changes the ticket, writes a TicketEvent and an AuditLog row — and, for the
customer-visible steps (received, being handled, resolved + survey question, reopened, closed), the
outbound message through `scrm.interactions.record_outbound` — all in the caller's transaction.
Events for the console are queued on the session (`pending_events`) and published after commit.

Concurrency: the ticket row carries a version column that SQLAlchemy checks on every UPDATE; a
caller may also pass the version it saw (`expected_version`). Either way a lost race is `Conflict`
(HTTP 409), never a lost update.

Status machine::

    new → triaged → assigned → in_progress ⇄ waiting_customer → resolved → closed
                                                   resolved / closed → reopened → assigned …
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Conversation, Customer, Presence, Role, Sender, User, aware, utcnow
from models.scrm import CustomerEvent
from models.ticket import OPEN_STATUSES, Severity, Ticket, TicketEvent, TicketStatus
from scrm import triage
from scrm.audit import Actor, record_audit
from scrm.calendar import BusinessCalendar
from scrm.errors import Conflict, Forbidden, InvalidTransition, NotFound, ValidationFailed
from scrm.ticket_config import TicketConfig, load_ticket_config

S = TicketStatus
TRANSITIONS: dict[TicketStatus, frozenset[TicketStatus]] = {
    S.NEW: frozenset({S.TRIAGED}),
    S.TRIAGED: frozenset({S.ASSIGNED, S.RESOLVED}),
    S.ASSIGNED: frozenset({S.IN_PROGRESS, S.WAITING_CUSTOMER, S.RESOLVED}),
    S.IN_PROGRESS: frozenset({S.WAITING_CUSTOMER, S.RESOLVED}),
    S.WAITING_CUSTOMER: frozenset({S.IN_PROGRESS, S.RESOLVED, S.CLOSED}),
    S.RESOLVED: frozenset({S.CLOSED, S.REOPENED}),
    S.REOPENED: frozenset({S.ASSIGNED, S.IN_PROGRESS, S.WAITING_CUSTOMER, S.RESOLVED}),
    S.CLOSED: frozenset({S.REOPENED}),
}
# What staff read (error messages, pages); the enum values stay English in the API.
STATUS_LABELS: dict[TicketStatus, str] = {
    S.NEW: "新建",
    S.TRIAGED: "待分配",
    S.ASSIGNED: "已分配",
    S.IN_PROGRESS: "处理中",
    S.WAITING_CUSTOMER: "等待客户",
    S.RESOLVED: "已解决",
    S.REOPENED: "已重开",
    S.CLOSED: "已关闭",
}
STAFF_ROLES = frozenset({Role.AGENT.value, Role.SUPERVISOR.value, Role.ADMIN.value})
LEAD_ROLES = frozenset({Role.SUPERVISOR.value, Role.ADMIN.value})
EVENTS_KEY = "huike.ticket_events"


@dataclass(slots=True)
class TicketPolicy:
    """Configuration, calendar and clock the verbs share; one per app (tests pass a controlled clock)."""

    config: TicketConfig
    calendar: BusinessCalendar
    clock: Callable[[], datetime] = field(default=utcnow)

    @classmethod
    def load(
        cls, path: Path | None = None, *, data_dir: Path | None = None, clock: Callable[[], datetime] | None = None
    ) -> TicketPolicy:
        config = load_ticket_config(path)
        return cls(config=config, calendar=config.build_calendar(data_dir), clock=clock or utcnow)

    def now(self) -> datetime:
        return aware(self.clock())


# ----- reading ------------------------------------------------------------------------------------


async def get_ticket(session: AsyncSession, ticket_id: int, *, for_update: bool = False) -> Ticket:
    query = select(Ticket).where(Ticket.id == ticket_id)
    if for_update:
        query = query.with_for_update()
    ticket = (await session.exec(query)).first()
    if ticket is None:
        raise NotFound(f"工单 {ticket_id} 不存在")
    return ticket


async def find_by_number(session: AsyncSession, number: str) -> Ticket:
    ticket = (await session.exec(select(Ticket).where(Ticket.number == number))).first()
    if ticket is None:
        raise NotFound(f"工单 {number} 不存在")
    return ticket


async def find_open_ticket(session: AsyncSession, *, customer_id: int, order_no: str | None) -> Ticket | None:
    """The customer's open (or resolved, not yet closed) ticket on this order, if any."""
    if not order_no:
        return None
    statuses = [*OPEN_STATUSES, S.RESOLVED]
    return (
        await session.exec(
            select(Ticket)
            .where(
                Ticket.customer_id == customer_id,
                Ticket.order_no == order_no,
                col(Ticket.status).in_(statuses),
            )
            .order_by(col(Ticket.id).desc())
        )
    ).first()


async def awaiting_survey(session: AsyncSession, *, customer_id: int) -> Ticket | None:
    """The customer's resolved ticket whose satisfaction question is still unanswered."""
    return (
        await session.exec(
            select(Ticket)
            .where(
                Ticket.customer_id == customer_id,
                Ticket.status == S.RESOLVED,
                col(Ticket.survey_sent_at).is_not(None),
            )
            .order_by(col(Ticket.resolved_at).desc(), col(Ticket.id).desc())
        )
    ).first()


async def list_events(session: AsyncSession, ticket_id: int) -> list[TicketEvent]:
    return list(
        (
            await session.exec(
                select(TicketEvent).where(TicketEvent.ticket_id == ticket_id).order_by(col(TicketEvent.id))
            )
        ).all()
    )


def pending_events(session: AsyncSession) -> list[tuple[str, dict[str, Any]]]:
    """(topic, data) pairs the verbs queued; publish them after the transaction commits."""
    events: list[tuple[str, dict[str, Any]]] = session.info.setdefault(EVENTS_KEY, [])
    return events


def take_events(session: AsyncSession) -> list[tuple[str, dict[str, Any]]]:
    events = list(pending_events(session))
    pending_events(session).clear()
    return events


# ----- opening ------------------------------------------------------------------------------------


async def open_ticket(
    session: AsyncSession,
    *,
    policy: TicketPolicy,
    customer_id: int,
    description: str,
    actor: Actor,
    channel: str = "api",
    conversation_id: int | None = None,
    order_no: str | None = None,
    subject: str = "",
    category: str | None = None,
    severity: Severity | None = None,
    contact_preference: str | None = None,
    contact_phone: str | None = None,
    parse: Any = None,
    notify: bool = True,
    auto_assign: bool = True,
    created_at: datetime | None = None,
) -> Ticket:
    """Open, triage, set SLA due times, try to assign; tell the customer it was received (`notify`)."""
    description = description.strip()
    if not description:
        raise ValidationFailed("请填写投诉内容")
    if category is not None and category not in _categories(policy):
        raise ValidationFailed(f"未知类别：{category}")
    if await session.get(Customer, customer_id) is None:
        raise NotFound(f"客户 {customer_id} 不存在")
    now = aware(created_at) if created_at else policy.now()
    config = policy.config

    guess = triage.categorize(f"{subject} {description}", parse, config)
    if category is not None:
        guess = triage.CategoryGuess(category, 1.0, "agent", triage.skill_for(category, config))
    anger = triage.parse_anger(parse)
    signals = await triage.gather_signals(
        session,
        customer_id=customer_id,
        text=f"{subject} {description}",
        anger=anger,
        category=guess.category,
        order_no=order_no,
        now=now,
    )
    verdict = triage.assess_severity(signals, config)
    reason = verdict.reason
    if severity is not None and severity != verdict.severity:
        reason = f"{actor.name} 指定 {severity!s}（规则建议 {verdict.severity!s}：{verdict.reason}）"
    chosen = severity or verdict.severity

    ticket = Ticket(
        customer_id=customer_id,
        conversation_id=conversation_id,
        channel=channel,
        order_no=order_no or None,
        subject=subject[:120],
        description=description,
        contact_preference=contact_preference,
        contact_phone=contact_phone,
        created_at=now,
        updated_at=now,
    )
    session.add(ticket)
    await session.flush()
    assert ticket.id is not None
    ticket.number = f"{now.astimezone(policy.calendar.tz):%Y%m%d}-{ticket.id:05d}"
    _event(session, ticket, actor, "opened", to_status=S.NEW, note=description[:200], data={"channel": channel})

    # triage: new -> triaged
    ticket.category = guess.category
    ticket.category_confidence = guess.confidence
    ticket.category_source = guess.source
    ticket.skill_group = guess.skill_group
    ticket.severity = chosen
    ticket.severity_reason = reason[:500]
    _set_sla(ticket, policy, start=now)
    _move(session, ticket, S.TRIAGED, Actor.system("triage"), now)
    _event(
        session,
        ticket,
        Actor.system("triage"),
        "triaged",
        note=reason,
        data={
            "category": guess.category,
            "confidence": guess.confidence,
            "source": guess.source,
            "severity": str(chosen),
            "first_response_due": ticket.first_response_due,
            "resolution_due": ticket.resolution_due,
        },
    )
    session.add(CustomerEvent(customer_id=customer_id, kind="ticket", name=ticket.category, created_at=now))
    record_audit(
        session,
        actor=actor,
        action="ticket.open",
        object_type="ticket",
        object_id=ticket.id,
        after=_snapshot(ticket),
    )
    if notify:
        await notify_customer(session, policy, ticket, "received", due=_local(policy, ticket.first_response_due))
    if auto_assign:
        await assign(session, policy=policy, ticket=ticket, actor=Actor.system("assignment"), assignee_id=None)
    pending_events(session).append(("ticket.opened", _public(ticket)))
    await _flush(session)
    return ticket


async def add_to_ticket(
    session: AsyncSession,
    *,
    policy: TicketPolicy,
    ticket: Ticket,
    actor: Actor,
    text: str,
    data: dict[str, Any] | None = None,
) -> Ticket:
    """The customer (or an agent) adds information; a customer reply ends waiting_customer."""
    if ticket.status == S.CLOSED:
        raise InvalidTransition(f"工单 {ticket.number} 已关闭")
    now = policy.now()
    kind = "customer_message" if actor.role == "customer" else "note"
    _event(session, ticket, actor, kind, note=text[:2000], data=data or {})
    ticket.updated_at = now
    if kind == "customer_message" and ticket.status == S.WAITING_CUSTOMER:
        _resume_sla_clock(ticket, policy, now)
        _move(session, ticket, S.IN_PROGRESS, actor, now)
    pending_events(session).append(("ticket.updated", _public(ticket)))
    await _flush(session)
    return ticket


# ----- status changes -----------------------------------------------------------------------------


async def transition(
    session: AsyncSession,
    *,
    policy: TicketPolicy,
    ticket: Ticket,
    to: TicketStatus,
    actor: Actor,
    note: str = "",
    expected_version: int | None = None,
) -> Ticket:
    """Generic move for the agent's buttons: start (in_progress), wait for customer, back to work.

    Resolve, close, reopen and assign have their own verbs (they carry data and notify the customer).
    """
    _check_version(ticket, expected_version)
    _check_staff(ticket, actor)
    if to in (S.RESOLVED, S.CLOSED, S.REOPENED, S.ASSIGNED, S.TRIAGED, S.NEW):
        raise InvalidTransition(f"请使用对应操作完成“{STATUS_LABELS[to]}”")
    _check_allowed(ticket, to)
    now = policy.now()
    if ticket.status == S.WAITING_CUSTOMER:
        _resume_sla_clock(ticket, policy, now)
    _move(session, ticket, to, actor, now, note=note)
    if to == S.IN_PROGRESS:
        await _first_response(session, ticket, actor, now)
        if ticket.handling_notified_at is None:
            ticket.handling_notified_at = now
            await notify_customer(session, policy, ticket, "handling")
    record_audit(
        session, actor=actor, action="ticket.transition", object_type="ticket", object_id=ticket.id,
        after={"status": str(to), "note": note},
    )  # fmt: skip
    await _flush(session)
    return ticket


async def record_first_response(session: AsyncSession, *, policy: TicketPolicy, ticket: Ticket, actor: Actor) -> Ticket:
    """An agent answered the customer (console reply): stops the first-response clock once."""
    await _first_response(session, ticket, actor, policy.now())
    await _flush(session)
    return ticket


async def assign(
    session: AsyncSession,
    *,
    policy: TicketPolicy,
    ticket: Ticket,
    actor: Actor,
    assignee_id: int | None,
    expected_version: int | None = None,
) -> Ticket:
    """triaged/reopened -> assigned. `assignee_id` None: pick an online agent of the skill group.

    With nobody online the ticket stays where it is (the scheduler tries again); not an error.
    """
    _check_version(ticket, expected_version)
    if actor.id is not None and actor.role not in STAFF_ROLES:
        raise Forbidden("无权分配工单")
    if ticket.status not in (S.TRIAGED, S.REOPENED):
        raise InvalidTransition(f"工单状态为“{STATUS_LABELS[ticket.status]}”，不能分配（已分配的请用改派）")
    if assignee_id is None:
        agent = await pick_agent(session, policy, ticket)
        if agent is None:
            return ticket
    else:
        if actor.role == Role.AGENT.value and assignee_id != actor.id:
            raise Forbidden("客服只能把工单分配给自己")
        agent = await _staff(session, assignee_id)
    now = policy.now()
    ticket.assignee_id = agent.id
    ticket.assigned_at = now
    _move(session, ticket, S.ASSIGNED, actor, now, data={"assignee_id": agent.id, "assignee": agent.username})
    record_audit(
        session, actor=actor, action="ticket.assign", object_type="ticket", object_id=ticket.id,
        after={"assignee_id": agent.id},
    )  # fmt: skip
    pending_events(session).append(("ticket.assigned", _public(ticket)))
    await _flush(session)
    return ticket


async def reassign(
    session: AsyncSession,
    *,
    policy: TicketPolicy,
    ticket: Ticket,
    actor: Actor,
    assignee_id: int,
    note: str = "",
    expected_version: int | None = None,
) -> Ticket:
    """A supervisor moves an open ticket to another agent; the status stays."""
    _check_version(ticket, expected_version)
    if actor.role not in LEAD_ROLES:
        raise Forbidden("只有主管或管理员可以改派工单")
    if ticket.status not in OPEN_STATUSES:
        raise InvalidTransition(f"工单状态为“{STATUS_LABELS[ticket.status]}”，不能改派")
    agent = await _staff(session, assignee_id)
    before = ticket.assignee_id
    ticket.assignee_id = agent.id
    ticket.assigned_at = policy.now()
    ticket.updated_at = ticket.assigned_at
    if ticket.status in (S.TRIAGED, S.REOPENED):
        _move(session, ticket, S.ASSIGNED, actor, ticket.assigned_at)
    _event(session, ticket, actor, "reassigned", note=note, data={"from": before, "to": agent.id})
    record_audit(
        session, actor=actor, action="ticket.reassign", object_type="ticket", object_id=ticket.id,
        before={"assignee_id": before}, after={"assignee_id": agent.id},
    )  # fmt: skip
    pending_events(session).append(("ticket.assigned", _public(ticket)))
    await _flush(session)
    return ticket


async def resolve(
    session: AsyncSession,
    *,
    policy: TicketPolicy,
    ticket: Ticket,
    actor: Actor,
    note: str,
    resolution_code: str | None = None,
    root_cause: str | None = None,
    expected_version: int | None = None,
) -> Ticket:
    """-> resolved; the customer hears what was done and gets the satisfaction question."""
    _check_version(ticket, expected_version)
    _check_staff(ticket, actor)
    _check_allowed(ticket, S.RESOLVED)
    if not note.strip():
        raise ValidationFailed("请填写处理结果")
    now = policy.now()
    await _first_response(session, ticket, actor, now)
    ticket.resolution_note = note.strip()[:2000]
    ticket.resolution_code = resolution_code or ticket.resolution_code
    ticket.root_cause = root_cause or ticket.root_cause
    ticket.resolved_at = now
    ticket.waiting_since = None
    ticket.survey_sent_at = now
    _move(session, ticket, S.RESOLVED, actor, now, note=note)
    await notify_customer(session, policy, ticket, "resolved", note=ticket.resolution_note)
    record_audit(
        session, actor=actor, action="ticket.resolve", object_type="ticket", object_id=ticket.id,
        after={"resolution_code": ticket.resolution_code, "root_cause": ticket.root_cause, "note": note},
    )  # fmt: skip
    await _flush(session)
    return ticket


async def close(
    session: AsyncSession,
    *,
    policy: TicketPolicy,
    ticket: Ticket,
    actor: Actor,
    root_cause: str | None = None,
    resolution_code: str | None = None,
    note: str = "",
    notice: str | None = "closed",
    expected_version: int | None = None,
) -> Ticket:
    """resolved/waiting_customer -> closed. Staff must leave a root cause and resolution code."""
    _check_version(ticket, expected_version)
    _check_staff(ticket, actor)
    _check_allowed(ticket, S.CLOSED)
    ticket.root_cause = root_cause or ticket.root_cause
    ticket.resolution_code = resolution_code or ticket.resolution_code
    if actor.id is not None and not (ticket.root_cause and ticket.resolution_code):
        raise ValidationFailed("关闭工单前请选择归因和处理结果")
    now = policy.now()
    ticket.closed_at = now
    ticket.survey_sent_at = None
    ticket.waiting_since = None
    _move(session, ticket, S.CLOSED, actor, now, note=note)
    if notice:
        await notify_customer(
            session, policy, ticket, notice, days=days_text(policy.config.waiting_customer.close_after_days)
        )
    record_audit(
        session, actor=actor, action="ticket.close", object_type="ticket", object_id=ticket.id,
        after={"root_cause": ticket.root_cause, "resolution_code": ticket.resolution_code, "note": note},
    )  # fmt: skip
    await _flush(session)
    return ticket


async def reopen(
    session: AsyncSession,
    *,
    policy: TicketPolicy,
    ticket: Ticket,
    actor: Actor,
    reason: str,
    escalate_to_supervisor: bool = True,
    expected_version: int | None = None,
) -> Ticket:
    """resolved/closed -> reopened (the customer says it is not solved); escalated; new resolution clock."""
    _check_version(ticket, expected_version)
    if actor.id is not None and actor.role not in STAFF_ROLES:
        raise Forbidden("无权重新打开工单")
    _check_allowed(ticket, S.REOPENED)
    now = policy.now()
    ticket.reopen_count += 1
    ticket.survey_sent_at = None
    ticket.resolved_at = None
    ticket.closed_at = None
    _move(session, ticket, S.REOPENED, actor, now, note=reason)
    if escalate_to_supervisor:
        await escalate(session, policy=policy, ticket=ticket, reason=f"客户反馈未解决：{reason}", now=now)
    _restart_resolution_clock(ticket, policy, now)
    queued = escalate_to_supervisor and ticket.escalated_to_id is None and "reopened_queue" in policy.config.texts
    await notify_customer(session, policy, ticket, "reopened_queue" if queued else "reopened")
    record_audit(
        session, actor=actor, action="ticket.reopen", object_type="ticket", object_id=ticket.id,
        after={"reason": reason, "reopen_count": ticket.reopen_count},
    )  # fmt: skip
    await _flush(session)
    return ticket


async def escalate(
    session: AsyncSession,
    *,
    policy: TicketPolicy,
    ticket: Ticket,
    reason: str,
    now: datetime | None = None,
    raise_severity: bool = True,
) -> Ticket:
    """Hand to a supervisor and raise severity one level (P4 -> P3 … P1 stays P1)."""
    now = now or policy.now()
    before = ticket.severity
    if raise_severity:
        ticket.severity = _raised(ticket.severity)
    supervisor = await pick_supervisor(session, policy, ticket)
    # Nobody online: the one it was escalated to before keeps it, else the shared escalation queue (None).
    ticket.escalated_to_id = supervisor.id if supervisor else ticket.escalated_to_id
    ticket.escalation_level += 1
    ticket.escalated_at = now
    ticket.updated_at = now
    note = reason if supervisor or ticket.escalated_to_id else f"{reason}（没有在线的主管或管理员，已放入升级待办队列）"
    _event(
        session,
        ticket,
        Actor.system("sla"),
        "escalated",
        note=note,
        data={
            "severity_from": str(before),
            "severity_to": str(ticket.severity),
            "supervisor_id": ticket.escalated_to_id,
        },
    )
    if ticket.severity != before:
        ticket.severity_reason = f"{ticket.severity_reason}；升级：{reason}"[-500:]
    record_audit(
        session,
        actor=Actor.system("sla"),
        action="ticket.escalate",
        object_type="ticket",
        object_id=ticket.id,
        before={"severity": str(before)},
        after={"severity": str(ticket.severity), "supervisor": ticket.escalated_to_id},
    )
    pending_events(session).append(("ticket.escalated", _public(ticket)))
    return ticket


async def update_triage(
    session: AsyncSession,
    *,
    policy: TicketPolicy,
    ticket: Ticket,
    actor: Actor,
    category: str | None = None,
    severity: Severity | None = None,
    note: str = "",
    expected_version: int | None = None,
) -> Ticket:
    """A human sets the category (e.g. out of 待分类) or overrides severity; the reason is kept."""
    _check_version(ticket, expected_version)
    _check_staff(ticket, actor)
    if ticket.status == S.CLOSED:
        raise InvalidTransition("工单已关闭")
    before = {"category": ticket.category, "severity": str(ticket.severity)}
    if category is not None:
        if category not in _categories(policy):
            raise ValidationFailed(f"未知类别：{category}")
        ticket.category, ticket.category_source, ticket.category_confidence = category, "agent", 1.0
        ticket.skill_group = triage.skill_for(category, policy.config)
    if severity is not None and severity != ticket.severity:
        ticket.severity = severity
        ticket.severity_reason = f"{actor.name} 调整为 {severity!s}：{note or '人工判断'}"[:500]
        _set_sla(ticket, policy, start=aware(ticket.created_at))
    ticket.updated_at = policy.now()
    after = {"category": ticket.category, "severity": str(ticket.severity)}
    _event(session, ticket, actor, "retriaged", note=note, data={"before": before, "after": after})
    record_audit(
        session, actor=actor, action="ticket.triage", object_type="ticket", object_id=ticket.id,
        before=before, after=after,
    )  # fmt: skip
    await _flush(session)
    return ticket


# ----- assignment ---------------------------------------------------------------------------------


async def _load_by_agent(session: AsyncSession) -> dict[int, tuple[int, datetime | None]]:
    rows = (
        await session.exec(
            select(Ticket.assignee_id, sa.func.count(), sa.func.max(Ticket.assigned_at))
            .where(col(Ticket.assignee_id).is_not(None), col(Ticket.status).in_(list(OPEN_STATUSES)))
            .group_by(col(Ticket.assignee_id))
        )
    ).all()
    return {int(agent): (int(count), last) for agent, count, last in rows if agent is not None}


async def pick_agent(session: AsyncSession, policy: TicketPolicy, ticket: Ticket) -> User | None:
    """Online agents with the ticket's skill group (any online agent when nobody has it), under capacity."""
    agents = list(
        (
            await session.exec(
                select(User).where(
                    User.active == True,  # noqa: E712
                    User.role == Role.AGENT,
                    User.presence == Presence.ONLINE,
                )
            )
        ).all()
    )
    skilled = [a for a in agents if ticket.skill_group and ticket.skill_group in _skills(a)]
    pool = skilled or agents
    if not pool:
        return None
    load = await _load_by_agent(session)
    epoch = datetime.min.replace(tzinfo=UTC)

    def last_assigned(agent: User) -> datetime:
        return aware(load.get(agent.id or 0, (0, None))[1] or epoch)

    pool = [a for a in pool if load.get(a.id or 0, (0, None))[0] < a.max_concurrent]
    if not pool:
        return None
    if policy.config.assignment.strategy == "round_robin":
        return min(pool, key=lambda a: (last_assigned(a), a.id or 0))
    return min(pool, key=lambda a: (load.get(a.id or 0, (0, None))[0], last_assigned(a), a.id or 0))


async def pick_supervisor(session: AsyncSession, policy: TicketPolicy, ticket: Ticket | None = None) -> User | None:
    """Who an escalation lands on, in order: an online supervisor of the ticket's skill group, any online
    supervisor, an online admin; None means the shared escalation queue every supervisor and admin sees.
    Within a step, the one with the fewest open escalations."""
    online = list(
        (
            await session.exec(
                select(User).where(
                    User.active == True,  # noqa: E712
                    User.presence == Presence.ONLINE,
                    col(User.role).in_((Role.SUPERVISOR, Role.ADMIN)),
                )
            )
        ).all()
    )
    supervisors = [u for u in online if u.role == Role.SUPERVISOR]
    skill = ticket.skill_group if ticket is not None else None
    chain = [
        [u for u in supervisors if skill and skill in _skills(u)],
        supervisors,
        [u for u in online if u.role == Role.ADMIN],
    ]
    pool = next((step for step in chain if step), [])
    if not pool:
        return None
    counts = dict(
        (
            await session.exec(
                select(Ticket.escalated_to_id, sa.func.count())
                .where(col(Ticket.status).in_(list(OPEN_STATUSES)), col(Ticket.escalated_to_id).is_not(None))
                .group_by(col(Ticket.escalated_to_id))
            )
        ).all()
    )
    return min(pool, key=lambda u: (counts.get(u.id, 0), u.id or 0))


async def escalation_queue(session: AsyncSession) -> list[Ticket]:
    """Open escalated tickets that landed on nobody: every supervisor and admin sees them."""
    return list(
        (
            await session.exec(
                select(Ticket)
                .where(
                    col(Ticket.status).in_(list(OPEN_STATUSES)),
                    Ticket.escalation_level > 0,
                    col(Ticket.escalated_to_id).is_(None),
                )
                .order_by(col(Ticket.escalated_at))
            )
        ).all()
    )


def _skills(user: User) -> set[str]:
    return {s.strip() for s in user.skills.replace("，", ",").split(",") if s.strip()}


async def _staff(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None or not user.active:
        raise NotFound(f"客服 {user_id} 不存在或已停用")
    return user


# ----- customer notices ---------------------------------------------------------------------------


async def notify_customer(session: AsyncSession, policy: TicketPolicy, ticket: Ticket, key: str, **values: Any) -> bool:
    """Tell the customer about a step, on the channel they used; returns False if there is nowhere to say it."""
    from scrm import interactions

    conversation: Conversation | None = None
    if ticket.conversation_id is not None:
        conversation = await session.get(Conversation, ticket.conversation_id)
    if conversation is None:
        conversation = await interactions.open_conversation_for(session, ticket.customer_id)
    text = policy.config.text(key, number=ticket.number, **values).strip()
    if conversation is None:
        _event(session, ticket, Actor.system("notify"), "notice_skipped", note=key, data={"reason": "no conversation"})
        return False
    message, _outbox = await interactions.record_outbound(
        session,
        conversation=conversation,
        text=text,
        sender=Sender.SYSTEM,
        payload={"text": text, "body": text, "ticket": ticket.number, "notice": key},
    )
    _event(session, ticket, Actor.system("notify"), "notified", note=key, data={"message_id": message.id})
    # the same shape the engine publishes for its replies, so web-chat sockets and the console show it live
    pending_events(session).append(
        (
            "message",
            _jsonable(
                {
                    "id": message.id,
                    "conversation_id": message.conversation_id,
                    "customer_id": message.customer_id,
                    "channel": message.channel,
                    "direction": message.direction,
                    "sender": message.sender,
                    "text": message.text,
                    "kind": message.kind,
                    "created_at": message.created_at.isoformat(),
                }
            ),
        )
    )
    return True


# ----- helpers ------------------------------------------------------------------------------------


def _categories(policy: TicketPolicy) -> set[str]:
    return {*policy.config.taxonomy.categories, policy.config.taxonomy.unclassified}


def _set_sla(ticket: Ticket, policy: TicketPolicy, *, start: datetime) -> None:
    sla = policy.config.sla.policies[ticket.severity]
    ratio = policy.config.sla.warning_ratio
    cal = policy.calendar
    ticket.first_response_due = cal.add_business_time(start, sla.first_response)
    ticket.first_response_warn_at = cal.add_business_time(start, sla.first_response * ratio)
    ticket.resolution_due = cal.add_business_time(start, sla.resolution)
    ticket.resolution_warn_at = cal.add_business_time(start, sla.resolution * ratio)


def _resume_sla_clock(ticket: Ticket, policy: TicketPolicy, now: datetime) -> None:
    """Time spent waiting for the customer does not count against the resolution target."""
    if ticket.waiting_since is None or ticket.resolution_breached_at is not None:
        return
    paused = policy.calendar.business_time_between(aware(ticket.waiting_since), now)
    if paused <= timedelta(0):
        return
    for name in ("resolution_due", "resolution_warn_at"):
        moment = getattr(ticket, name)
        if moment is not None:
            setattr(ticket, name, policy.calendar.add_business_time(aware(moment), paused))


def _restart_resolution_clock(ticket: Ticket, policy: TicketPolicy, now: datetime) -> None:
    sla = policy.config.sla.policies[ticket.severity]
    ticket.resolution_due = policy.calendar.add_business_time(now, sla.resolution)
    ticket.resolution_warn_at = policy.calendar.add_business_time(now, sla.resolution * policy.config.sla.warning_ratio)
    ticket.resolution_warned_at = None


def _raised(severity: Severity) -> Severity:
    order = triage.SEVERITY_ORDER
    return order[max(0, order.index(severity) - 1)]


def _check_version(ticket: Ticket, expected: int | None) -> None:
    if expected is not None and expected != ticket.version:
        raise Conflict(
            f"工单 {ticket.number} 已被他人修改（版本 {ticket.version}，你看到的是 {expected}），请刷新后重试"
        )


def _check_allowed(ticket: Ticket, to: TicketStatus) -> None:
    if to not in TRANSITIONS[ticket.status]:
        raise InvalidTransition(f"工单状态不能从“{STATUS_LABELS[ticket.status]}”变为“{STATUS_LABELS[to]}”")


def _check_staff(ticket: Ticket, actor: Actor) -> None:
    """System actors (bot, scheduler, CLI) may act; agents only on their own tickets; leads on any."""
    if actor.id is None and actor.role in ("system", "customer"):
        return
    if actor.role in LEAD_ROLES:
        return
    if actor.role == Role.AGENT.value and ticket.assignee_id == actor.id:
        return
    raise Forbidden("只能处理分配给自己的工单")


def _move(
    session: AsyncSession,
    ticket: Ticket,
    to: TicketStatus,
    actor: Actor,
    now: datetime,
    *,
    note: str = "",
    data: dict[str, Any] | None = None,
) -> None:
    before = ticket.status
    ticket.status = to
    ticket.updated_at = now
    ticket.waiting_since = now if to == S.WAITING_CUSTOMER else None
    if to == S.WAITING_CUSTOMER:
        ticket.reminder_sent_at = None
    _event(session, ticket, actor, "transition", from_status=before, to_status=to, note=note, data=data or {})
    pending_events(session).append(("ticket.updated", _public(ticket)))


async def _first_response(session: AsyncSession, ticket: Ticket, actor: Actor, now: datetime) -> None:
    if ticket.first_response_at is None:
        ticket.first_response_at = now
        _event(session, ticket, actor, "first_response")


def _event(
    session: AsyncSession,
    ticket: Ticket,
    actor: Actor,
    kind: str,
    *,
    from_status: TicketStatus | None = None,
    to_status: TicketStatus | None = None,
    note: str = "",
    data: dict[str, Any] | None = None,
) -> TicketEvent:
    assert ticket.id is not None
    row = TicketEvent(
        ticket_id=ticket.id,
        kind=kind,
        actor_id=actor.id,
        actor=actor.name[:64],
        from_status=str(from_status) if from_status else None,
        to_status=str(to_status) if to_status else None,
        note=note[:2000],
        data=_jsonable(data or {}),
    )
    session.add(row)
    return row


def record_event(
    session: AsyncSession,
    ticket: Ticket,
    actor: Actor,
    kind: str,
    *,
    note: str = "",
    data: dict[str, Any] | None = None,
) -> TicketEvent:
    """A TicketEvent for something other verbs don't cover (survey answers, SLA warnings …)."""
    ticket.updated_at = utcnow()
    return _event(session, ticket, actor, kind, note=note, data=data)


async def _flush(session: AsyncSession) -> None:
    try:
        await session.flush()
    except StaleDataError:
        raise Conflict(CONCURRENT) from None
    except OperationalError as exc:
        if is_sqlite_write_race(exc):
            raise Conflict(CONCURRENT) from None
        raise


CONCURRENT = "工单已被他人同时修改，请刷新后重试"


def is_sqlite_write_race(exc: BaseException) -> bool:
    """SQLite refuses a write from a transaction whose snapshot another writer already replaced
    ("database is locked" at once, SQLITE_BUSY_SNAPSHOT): the same lost race as a stale version."""
    return isinstance(exc, OperationalError) and "database is locked" in str(exc)


def _snapshot(ticket: Ticket) -> dict[str, Any]:
    return {
        "number": ticket.number,
        "status": str(ticket.status),
        "category": ticket.category,
        "severity": str(ticket.severity),
        "severity_reason": ticket.severity_reason,
        "order_no": ticket.order_no,
        "first_response_due": ticket.first_response_due,
        "resolution_due": ticket.resolution_due,
    }


def _public(ticket: Ticket) -> dict[str, Any]:
    return _jsonable(
        {
            "id": ticket.id,
            "number": ticket.number,
            "status": str(ticket.status),
            "severity": str(ticket.severity),
            "category": ticket.category,
            "assignee_id": ticket.assignee_id,
            "customer_id": ticket.customer_id,
            "version": ticket.version,
        }
    )


def _local(policy: TicketPolicy, moment: datetime | None) -> str:
    if moment is None:
        return ""
    return f"{aware(moment).astimezone(policy.calendar.tz):%m月%d日 %H:%M}"


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    import json

    return dict(json.loads(json.dumps(data, default=str, ensure_ascii=False)))


def days_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


public_view = _public
local_time = _local
