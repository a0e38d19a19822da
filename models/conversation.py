"""Conversations and the messages in them."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import created_at_field, datetime_field, json_field


class ConversationState(enum.StrEnum):
    BOT = "bot"  # the bot answers
    QUEUED = "queued"  # waiting for an agent; the bot stays silent
    AGENT = "agent"  # an agent owns it; the bot stays silent
    CLOSED = "closed"


class Conversation(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    channel: str = Field(max_length=16)
    app_id: str = Field(max_length=64)
    external_id: str = Field(max_length=128)  # where replies go on that channel
    state: ConversationState = Field(default=ConversationState.BOT, sa_type=sa.String(16), index=True)
    agent_id: int | None = Field(default=None, foreign_key="user.id", index=True)
    queue_reason: str | None = Field(default=None, max_length=32)
    queued_at: datetime | None = datetime_field()  # entry into the queue (kept after: first response counts from it)
    assigned_at: datetime | None = datetime_field()  # an agent took it (handling time = closed_at - assigned_at)
    # Multi-turn flow state (complaint slot filling, clarify choices, survey …).
    flow: str | None = Field(default=None, max_length=32)
    flow_state: dict[str, Any] = json_field()
    fallback_count: int = 0
    created_at: datetime = created_at_field()
    last_message_at: datetime | None = datetime_field(index=True)
    closed_at: datetime | None = datetime_field()


class ConversationRead(SQLModel):
    id: int
    customer_id: int
    channel: str
    state: ConversationState
    agent_id: int | None
    queue_reason: str | None
    queued_at: datetime | None
    created_at: datetime
    last_message_at: datetime | None


class Direction(enum.StrEnum):
    IN = "in"
    OUT = "out"


class InboundState(enum.StrEnum):
    RECEIVED = "received"  # stored, not yet answered: recovered after a crash
    HANDLED = "handled"  # the engine's replies are recorded


class Sender(enum.StrEnum):
    CUSTOMER = "customer"
    BOT = "bot"
    AGENT = "agent"
    SYSTEM = "system"
    NOTE = "note"  # internal agent note, never shown to the customer


class Message(SQLModel, table=True):
    __table_args__ = (sa.UniqueConstraint("channel", "channel_msg_id"),)

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id", index=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    channel: str = Field(max_length=16)
    direction: Direction = Field(sa_type=sa.String(4))
    sender: Sender = Field(default=Sender.CUSTOMER, sa_type=sa.String(16))
    agent_id: int | None = Field(default=None, foreign_key="user.id")
    kind: str = Field(default="text", max_length=16)
    text: str = Field(default="", sa_type=sa.Text)
    payload: dict[str, Any] = json_field()
    # Inbound: the channel's own id (dedup key). Outbound: null.
    channel_msg_id: str | None = Field(default=None, max_length=128)
    state: str | None = Field(default=None, max_length=16, index=True)  # InboundState for inbound
    reply_to_id: int | None = Field(default=None, foreign_key="message.id", index=True)
    created_at: datetime = created_at_field()


class MessageRead(SQLModel):
    id: int
    conversation_id: int
    direction: Direction
    sender: Sender
    kind: str
    text: str
    created_at: datetime
