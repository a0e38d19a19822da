"""The ticket sweep the scheduler runs every minute: SLA warnings and breaches, waiting-customer
reminders and auto-close, and assignment of tickets nobody could take when they came in.

Safe with several workers: each ticket is handled in its own transaction after claiming it —
`SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL, a compare-and-set lease on SQLite (one writer at
a time there) — and every condition is re-checked on the claimed, fresh row. The version column
turns any remaining race into a rolled-back no-op, so a ticket is never escalated twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.exc import OperationalError
from sqlmodel import and_, col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Direction, Message, Sender, aware
from models.ticket import OPEN_STATUSES, Ticket, TicketStatus
from scrm import tickets
from scrm.audit import Actor
from scrm.db import SessionFactory, transaction
from scrm.errors import Conflict

log = structlog.get_logger(__name__)
Publish = Callable[[str, dict[str, Any]], Awaitable[None]]
LEASE = timedelta(seconds=120)
SLA = Actor.system("sla")
S = TicketStatus
_SLA_STATUSES = [s for s in OPEN_STATUSES if s != S.WAITING_CUSTOMER]


@dataclass
class SweepResult:
    warned: int = 0
    escalated: int = 0
    reminded: int = 0
    auto_closed: int = 0
    assigned: int = 0
    first_responses: int = 0  # filled from agents' console replies
    skipped: int = 0  # claimed elsewhere or changed under us
    ticket_ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {k: v for k, v in self.__dict__.items() if isinstance(v, int)}


async def sweep(
    sessions: SessionFactory,
    policy: tickets.TicketPolicy,
    *,
    publish: Publish | None = None,
    batch: int = 200,
) -> SweepResult:
    now = policy.now()
    result = SweepResult()
    async with sessions() as session:
        ids = list((await session.exec(_due_query(policy, now).limit(batch))).all())
    for ticket_id in ids:
        assert ticket_id is not None
        try:
            async with transaction(sessions) as session:
                ticket = await _claim(session, ticket_id, now)
                if ticket is None:
                    result.skipped += 1
                    continue
                await _work(session, policy, ticket, now, result)
                ticket.claimed_until = None
                await session.flush()
                events = tickets.take_events(session)
        except (Conflict, sa.orm.exc.StaleDataError, OperationalError) as exc:
            # another worker changed the ticket first: it did the work, we do nothing
            log.info("ticket_sweep_skipped", ticket_id=ticket_id, reason=type(exc).__name__)
            result.skipped += 1
            continue
        result.ticket_ids.append(ticket_id)
        if publish is not None:
            for topic, data in events:
                await publish(topic, data)
    if any(result.as_dict().values()):
        log.info("ticket_sweep", **result.as_dict())
    return result


def _due_query(policy: tickets.TicketPolicy, now: datetime) -> Any:
    remind_before = now - timedelta(hours=policy.config.waiting_customer.remind_after_hours)
    t = Ticket
    in_sla = col(t.status).in_(_SLA_STATUSES)
    no_first_response = col(t.first_response_at).is_(None)
    agent_replied = sa.exists().where(
        col(Message.conversation_id) == col(t.conversation_id),
        col(Message.sender) == Sender.AGENT,
        col(Message.direction) == Direction.OUT,
        col(Message.created_at) >= col(t.created_at),
    )
    return (
        select(t.id)
        .where(
            or_(
                and_(in_sla, no_first_response, col(t.conversation_id).is_not(None), agent_replied),
                and_(in_sla, no_first_response, col(t.first_response_warned_at).is_(None),
                     col(t.first_response_warn_at) <= now),
                and_(in_sla, no_first_response, col(t.first_response_breached_at).is_(None),
                     col(t.first_response_due) <= now),
                and_(in_sla, col(t.resolution_warned_at).is_(None), col(t.resolution_warn_at) <= now),
                and_(in_sla, col(t.resolution_breached_at).is_(None), col(t.resolution_due) <= now),
                and_(t.status == S.WAITING_CUSTOMER, col(t.waiting_since) <= remind_before),
                and_(col(t.status).in_([S.TRIAGED, S.REOPENED]), col(t.assignee_id).is_(None)),
            )
        )
        .order_by(col(t.id))
    )  # fmt: skip


async def _claim(session: AsyncSession, ticket_id: int, now: datetime) -> Ticket | None:
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        query = select(Ticket).where(Ticket.id == ticket_id).with_for_update(skip_locked=True)
        return (await session.exec(query)).first()
    # SQLite: the UPDATE takes the write lock first, so what we read next is the latest commit.
    claimed = await session.exec(  # type: ignore[call-overload]
        sa.update(Ticket)
        .where(
            col(Ticket.id) == ticket_id,
            or_(col(Ticket.claimed_until).is_(None), col(Ticket.claimed_until) < now),
        )
        .values(claimed_until=now + LEASE)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        return None
    return (await session.exec(select(Ticket).where(Ticket.id == ticket_id))).first()


async def _work(
    session: AsyncSession, policy: tickets.TicketPolicy, t: Ticket, now: datetime, result: SweepResult
) -> None:
    """Re-check every condition on the claimed row and act on the ones still due."""
    config = policy.config
    in_sla = t.status in _SLA_STATUSES
    if in_sla and t.first_response_at is None:
        replied_at = await _first_agent_reply(session, t)
        if replied_at is not None:  # an agent answered in the console: that is the first response
            t.first_response_at = replied_at
            tickets.record_event(session, t, SLA, "first_response", note="客服已在会话中回复", data={"at": replied_at})
            result.first_responses += 1
    if in_sla and t.first_response_at is None:
        if t.first_response_breached_at is None and _due(t.first_response_due, now):
            t.first_response_breached_at = now
            t.first_response_warned_at = t.first_response_warned_at or now
            await tickets.escalate(session, policy=policy, ticket=t, reason="首次响应超时（SLA 违约）", now=now)
            result.escalated += 1
        elif t.first_response_warned_at is None and _due(t.first_response_warn_at, now):
            t.first_response_warned_at = now
            _warn(session, t, "first_response", t.first_response_due)
            result.warned += 1
    if in_sla:
        if t.resolution_breached_at is None and _due(t.resolution_due, now):
            t.resolution_breached_at = now
            t.resolution_warned_at = t.resolution_warned_at or now
            await tickets.escalate(session, policy=policy, ticket=t, reason="解决时限超时（SLA 违约）", now=now)
            result.escalated += 1
        elif t.resolution_warned_at is None and _due(t.resolution_warn_at, now):
            t.resolution_warned_at = now
            _warn(session, t, "resolution", t.resolution_due)
            result.warned += 1
    if t.status == S.WAITING_CUSTOMER and t.waiting_since is not None:
        waited = now - aware(t.waiting_since)
        close_after = timedelta(days=config.waiting_customer.close_after_days)
        if t.reminder_sent_at is None and waited >= timedelta(hours=config.waiting_customer.remind_after_hours):
            t.reminder_sent_at = now
            await tickets.notify_customer(
                session, policy, t, "reminder", days=tickets.days_text(config.waiting_customer.close_after_days)
            )
            tickets.record_event(session, t, SLA, "reminder", note="等待客户回复提醒")
            result.reminded += 1
        elif t.reminder_sent_at is not None and waited >= close_after:
            await tickets.close(
                session, policy=policy, ticket=t, actor=Actor.system("auto_close"), note="客户长时间未回复，自动关闭",
                notice="auto_closed",
            )  # fmt: skip
            result.auto_closed += 1
    if t.status in (S.TRIAGED, S.REOPENED) and t.assignee_id is None:
        await tickets.assign(session, policy=policy, ticket=t, actor=Actor.system("assignment"), assignee_id=None)
        if t.assignee_id is not None:
            result.assigned += 1


async def _first_agent_reply(session: AsyncSession, ticket: Ticket) -> datetime | None:
    if ticket.conversation_id is None:
        return None
    first = (
        await session.exec(
            select(sa.func.min(Message.created_at)).where(
                Message.conversation_id == ticket.conversation_id,
                Message.sender == Sender.AGENT,
                Message.direction == Direction.OUT,
                col(Message.created_at) >= ticket.created_at,
            )
        )
    ).first()
    return aware(first) if first else None


def _warn(session: AsyncSession, ticket: Ticket, which: str, due: datetime | None) -> None:
    label = "首次响应" if which == "first_response" else "解决"
    tickets.record_event(
        session, ticket, SLA, "sla_warning", note=f"{label}时限已过 80%", data={"which": which, "due": due}
    )
    tickets.pending_events(session).append(
        ("ticket.sla_warning", {**tickets.public_view(ticket), "which": which, "due": str(due)})
    )


def _due(moment: datetime | None, now: datetime) -> bool:
    return moment is not None and aware(moment) <= now
