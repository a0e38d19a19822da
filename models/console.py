"""Agent console: canned responses, and the FAQ matches agents confirmed for customer questions."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import created_at_field, datetime_field


class CannedResponseBase(SQLModel):
    # Typed in the reply box as "/shortcut" to insert the text.
    shortcut: str = Field(min_length=1, max_length=32, regex=r"^[\w\-]+$")
    title: str = Field(min_length=1, max_length=64)
    text: str = Field(min_length=1, max_length=2000)


class CannedResponse(CannedResponseBase, table=True):
    __table_args__ = (sa.UniqueConstraint("shortcut"),)

    id: int | None = Field(default=None, primary_key=True)
    created_by_id: int | None = Field(default=None, foreign_key="user.id")
    created_at: datetime = created_at_field()
    updated_at: datetime | None = datetime_field()


class CannedResponseCreate(CannedResponseBase):
    pass


class CannedResponseRead(CannedResponseBase):
    id: int


class FaqConfirmation(SQLModel, table=True):
    """A customer question an agent labelled with the FAQ that answers it (training pairs for the NLU)."""

    id: int | None = Field(default=None, primary_key=True)
    text: str = Field(max_length=2000)
    faq_id: int = Field(foreign_key="faqentry.id", index=True)
    message_id: int | None = Field(default=None, foreign_key="message.id")
    agent_id: int | None = Field(default=None, foreign_key="user.id")
    created_at: datetime = created_at_field()
