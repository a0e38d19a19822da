"""Durable outbound queue: a reply is recorded here before any channel tries to send it."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import created_at_field, datetime_field, json_field


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"  # gave up; `last_error` says why (visible to agents)


class OutboxMessage(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    message_id: int | None = Field(default=None, foreign_key="message.id", index=True)
    channel: str = Field(max_length=16)
    app_id: str = Field(max_length=64)
    external_id: str = Field(max_length=128)
    payload: dict[str, Any] = json_field()  # the rendered OutboundMessage
    status: OutboxStatus = Field(default=OutboxStatus.PENDING, sa_type=sa.String(16))
    delivered_via: str | None = Field(default=None, max_length=16)  # passive | api | template | push
    attempts: int = 0
    next_attempt_at: datetime = created_at_field()
    locked_until: datetime | None = datetime_field()
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = created_at_field()
    sent_at: datetime | None = datetime_field()

    __table_args__ = (
        sa.Index("ix_outboxmessage_due", "status", "next_attempt_at"),
        # WeChat's per-message reply limit counts a customer's recent API replies before each send
        sa.Index("ix_outboxmessage_recipient_sent", "channel", "app_id", "external_id", "sent_at"),
    )
