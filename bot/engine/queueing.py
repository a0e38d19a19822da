"""What a queued customer hears: position, expected wait (from recent handling times), service hours.

Every message while waiting gets one of these, so no customer turn goes unanswered. Outside the
service hours (the ticket calendar's working time) or with nobody present, the customer is told when
agents are back and may leave a message ("留言 …"), which becomes a ticket.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col, select

from bot.engine import texts
from bot.engine.handlers.complaint import forward_events, ticket_policy
from bot.engine.turn import Turn
from bot.messages import OutboundMessage
from models import Conversation, ConversationState, aware
from scrm import presence, tickets
from scrm.audit import Actor

LEAVE_MESSAGE = re.compile(r"^\s*留言\s*[:：,，]?\s*(.*)$", re.S)
RECENT_HANDLED = 20  # conversations whose handling time makes the estimate
DEFAULT_HANDLING = timedelta(minutes=5)  # before there is any history
CUSTOMER = Actor(id=None, name="customer", role="customer")


async def position(turn: Turn) -> int:
    """1 = next in line (queued earlier, or at the same time with a smaller id)."""
    me = turn.conversation
    queued_at = me.queued_at or turn.services.clock()
    ahead = (
        await turn.session.exec(
            select(sa.func.count())
            .select_from(Conversation)
            .where(
                Conversation.state == ConversationState.QUEUED,
                col(Conversation.id) != me.id,
                sa.or_(
                    col(Conversation.queued_at) < queued_at,
                    sa.and_(col(Conversation.queued_at) == queued_at, col(Conversation.id) < (me.id or 0)),
                ),
            )
        )
    ).one()
    return int(ahead) + 1


async def handling_time(turn: Turn) -> timedelta:
    """Mean time an agent spent on the last conversations they took and ended."""
    rows = (
        await turn.session.exec(
            select(Conversation.assigned_at, Conversation.closed_at)
            .where(col(Conversation.assigned_at).is_not(None), col(Conversation.closed_at).is_not(None))
            .order_by(col(Conversation.closed_at).desc())
            .limit(RECENT_HANDLED)
        )
    ).all()
    spans = [aware(end) - aware(start) for start, end in rows if start and end and end >= start]
    return sum(spans, timedelta()) / len(spans) if spans else DEFAULT_HANDLING


async def queue_status(turn: Turn) -> str:
    """One sentence: when an agent will come, or when agents are back and how to leave a message."""
    now = turn.services.clock()
    policy = ticket_policy(turn)
    if not policy.calendar.is_business_time(now):
        return texts.QUEUE_CLOSED.format(back=_back(turn, now))
    staff = await presence.present_staff(turn.session, now=now, grace=turn.services.settings.presence_grace)
    if not staff:
        return texts.QUEUE_NOBODY
    place = await position(turn)
    free = sum(max(0, s.free) for s in staff)
    if place <= free:
        return texts.QUEUE_NEXT.format(position=place)
    rounds = math.ceil((place - free) / len(staff))
    minutes = max(1, math.ceil(rounds * (await handling_time(turn)).total_seconds() / 60))
    return texts.QUEUE_WAIT.format(position=place, minutes=minutes)


async def queue_ack(turn: Turn) -> list[OutboundMessage]:
    return [OutboundMessage(text=texts.QUEUE_RECEIVED + await queue_status(turn))]


async def leave_message(turn: Turn) -> list[OutboundMessage]:
    """留言 while queued: the message becomes a ticket and the customer leaves the queue."""
    match = LEAVE_MESSAGE.match(turn.text)
    body = (match.group(1) if match else "").strip()
    if not body:
        return [OutboundMessage(text=texts.LEAVE_WHAT)]
    policy = ticket_policy(turn)
    ticket = await tickets.open_ticket(
        turn.session, policy=policy, customer_id=turn.customer.id or 0, description=body[:2000], actor=CUSTOMER,
        channel=str(turn.conversation.channel), conversation_id=turn.conversation.id, parse=await turn.parse(),
        notify=False,
    )  # fmt: skip
    tickets.record_event(turn.session, ticket, CUSTOMER, "notified", note="received", data={"via": "reply"})
    conversation = turn.conversation
    conversation.state = ConversationState.BOT
    turn.emit("conversation.updated", {"conversation_id": conversation.id, "state": ConversationState.BOT})
    forward_events(turn)
    due = tickets.local_time(policy, ticket.first_response_due)
    return [OutboundMessage(text=texts.LEFT_MESSAGE.format(number=ticket.number, due=due),
                            meta={"ticket": ticket.number})]  # fmt: skip


def _back(turn: Turn, now: datetime) -> str:
    policy = ticket_policy(turn)
    opens = policy.calendar.add_business_time(now, timedelta(seconds=1)) - timedelta(seconds=1)
    return tickets.local_time(policy, opens)
