"""Interactions: every inbound and outbound message is recorded here, and outbound ones are queued."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import (
    ChannelIdentity,
    Conversation,
    ConversationState,
    Customer,
    Direction,
    IdentityStatus,
    InboundState,
    Message,
    OutboxMessage,
    OutboxStatus,
    Sender,
    utcnow,
)
from scrm.customers import resolve_customer


@dataclass(frozen=True, slots=True)
class Received:
    message: Message
    duplicate: bool
    # Loaded while storing a new message; holding them keeps them in the session for the turn.
    conversation: Conversation | None = None
    customer: Customer | None = None


async def record_inbound(
    session: AsyncSession,
    *,
    channel: str,
    account: str,
    external_id: str,
    channel_msg_id: str,
    kind: str,
    text: str = "",
    payload: dict[str, Any] | None = None,
    unionid: str | None = None,
    now: datetime | None = None,
    state: InboundState = InboundState.RECEIVED,
) -> Received:
    """Store an inbound message durably; returns the row and whether it was stored before.

    The unique (channel, channel_msg_id) key is the last line of defence against
    retries: a duplicate returns the row stored the first time. `state` HANDLED is for a
    caller that answers it in this same transaction.
    """
    existing = await find_inbound(session, channel, channel_msg_id)
    if existing is not None:
        return Received(existing, duplicate=True)
    now = now or utcnow()
    customer, identity = await resolve_customer(
        session, channel=channel, app_id=account, external_id=external_id, unionid=unionid, seen_at=now
    )
    _follow_state(identity, payload or {})
    assert customer.id is not None
    conversation = await current_conversation(
        session, customer_id=customer.id, channel=channel, app_id=account, external_id=external_id, now=now
    )
    conversation.last_message_at = now
    assert conversation.id is not None
    message = Message(
        conversation_id=conversation.id,
        customer_id=customer.id,
        channel=channel,
        direction=Direction.IN,
        sender=Sender.CUSTOMER,
        kind=kind[:16],
        text=text,
        payload=payload or {},
        channel_msg_id=channel_msg_id,
        state=state,
        created_at=now,
    )
    if session.bind.dialect.name == "sqlite":  # BEGIN IMMEDIATE serialises writers: no race to lose
        session.add(message)
        await session.flush()
        return Received(message, False, conversation, customer)
    try:
        async with session.begin_nested():
            session.add(message)
    except IntegrityError:  # a concurrent delivery of the same message won the race
        existing = await find_inbound(session, channel, channel_msg_id)
        if existing is None:
            raise
        return Received(existing, duplicate=True)
    return Received(message, False, conversation, customer)


UNFOLLOW_EVENTS = frozenset({"unsubscribe", "del_external_contact", "del_follow_user"})
FOLLOW_USER_EVENTS = frozenset({"add_external_contact", "edit_external_contact"})


def _follow_state(identity: ChannelIdentity, payload: dict[str, Any]) -> None:
    """Follow/unfollow events change the channel identity they arrive on, with the message itself."""
    event = str(payload.get("event") or "").lower()
    if event in UNFOLLOW_EVENTS:
        # care honours the identity's status; the engine also publishes "customer.unfollowed"
        identity.status = IdentityStatus.UNFOLLOWED
    elif event in FOLLOW_USER_EVENTS and payload.get("follow_user"):
        identity.follow_user = str(payload["follow_user"])[:64]


async def find_inbound(session: AsyncSession, channel: str, channel_msg_id: str) -> Message | None:
    return (
        await session.exec(
            select(Message).where(Message.channel == channel, Message.channel_msg_id == channel_msg_id)
        )
    ).first()


async def current_conversation(
    session: AsyncSession, *, customer_id: int, channel: str, app_id: str, external_id: str, now: datetime
) -> Conversation:
    """The open conversation on this channel identity, or a new one."""
    conversation = (
        await session.exec(
            select(Conversation)
            .where(
                Conversation.customer_id == customer_id,
                Conversation.channel == channel,
                Conversation.app_id == app_id,
                Conversation.external_id == external_id,
                Conversation.state != ConversationState.CLOSED,
            )
            .order_by(col(Conversation.id).desc())
        )
    ).first()
    if conversation is None:
        conversation = Conversation(
            customer_id=customer_id,
            channel=channel,
            app_id=app_id,
            external_id=external_id,
            created_at=now,
        )
        session.add(conversation)
        await session.flush()
    return conversation


async def open_conversation_for(session: AsyncSession, customer_id: int) -> Conversation | None:
    """The customer's most recent conversation (for proactive messages: care, ticket notices)."""
    return (
        await session.exec(
            select(Conversation)
            .where(Conversation.customer_id == customer_id)
            .order_by(col(Conversation.last_message_at).desc().nulls_last(), col(Conversation.id).desc())
        )
    ).first()


@dataclass(frozen=True, slots=True)
class Outbound:
    """One message to a customer, before it is recorded (see `record_outbound`)."""

    conversation: Conversation
    text: str
    payload: dict[str, Any] | None = None
    sender: Sender = Sender.BOT
    agent_id: int | None = None
    reply_to_id: int | None = None
    kind: str = "text"
    next_attempt_at: datetime | None = None
    delivered_via: str | None = None
    meta: dict[str, Any] | None = None  # kept on the stored message only (e.g. which FAQ answered)


async def record_outbound(
    session: AsyncSession,
    *,
    conversation: Conversation,
    text: str,
    payload: dict[str, Any] | None = None,
    sender: Sender = Sender.BOT,
    agent_id: int | None = None,
    reply_to_id: int | None = None,
    kind: str = "text",
    next_attempt_at: datetime | None = None,
    delivered_via: str | None = None,
    meta: dict[str, Any] | None = None,
) -> tuple[Message, OutboxMessage]:
    """Record a message to the customer and queue it for delivery, in the caller's transaction.

    This is the one way anything reaches a customer (bot replies, agent replies, ticket
    notices, care messages). `payload` is the channel-neutral rendering the channel's
    deliverer understands (defaults to plain text); `delivered_via` marks a message delivered
    by being stored (web-chat pulls it), whose outbox row is written as sent.
    """
    item = Outbound(
        conversation, text, payload, sender, agent_id, reply_to_id, kind, next_attempt_at, delivered_via, meta
    )
    [recorded] = await record_outbound_many(session, [item])
    return recorded


async def record_outbound_many(session: AsyncSession, items: Sequence[Outbound]) -> list[tuple[Message, OutboxMessage]]:
    """`record_outbound` for many messages with two multi-row INSERTs (a care run sends thousands)."""
    now = utcnow()
    messages = []
    for item in items:
        assert item.conversation.id is not None
        messages.append(
            Message(
                conversation_id=item.conversation.id,
                customer_id=item.conversation.customer_id,
                channel=item.conversation.channel,
                direction=Direction.OUT,
                sender=item.sender,
                agent_id=item.agent_id,
                kind=item.kind,
                text=item.text,
                payload={**(item.payload or {}), **({"meta": item.meta} if item.meta else {})},
                reply_to_id=item.reply_to_id,
                created_at=now,
            )
        )
    session.add_all(messages)
    await session.flush()
    outboxes = [_outbox_row(item, message, now) for item, message in zip(items, messages, strict=True)]
    session.add_all(outboxes)
    for item in items:
        item.conversation.last_message_at = now
    await session.flush()
    return list(zip(messages, outboxes, strict=True))


def _outbox_row(item: Outbound, message: Message, now: datetime) -> OutboxMessage:
    conversation = item.conversation
    row = OutboxMessage(
        message_id=message.id,
        channel=conversation.channel,
        app_id=conversation.app_id,
        external_id=conversation.external_id,
        payload=item.payload or {"text": item.text},
        next_attempt_at=item.next_attempt_at or now,
    )
    if item.delivered_via:
        row.status, row.sent_at, row.delivered_via = OutboxStatus.SENT, now, item.delivered_via
    return row
