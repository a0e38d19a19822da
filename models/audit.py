"""Audit log: who did what to which object, with before/after."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel

from models.base import created_at_field, json_field


class AuditLog(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    actor_id: int | None = Field(default=None, foreign_key="user.id", index=True)  # None = system/bot/CLI
    actor: str = Field(default="system", max_length=64)
    action: str = Field(max_length=64, index=True)  # e.g. faq.update, ticket.transition
    object_type: str = Field(max_length=32)
    object_id: str = Field(default="", max_length=64)
    before: dict[str, Any] = json_field()
    after: dict[str, Any] = json_field()
    created_at: datetime = created_at_field()


class AuditLogRead(SQLModel):
    id: int
    actor: str
    action: str
    object_type: str
    object_id: str
    before: dict[str, Any]
    after: dict[str, Any]
    created_at: datetime
