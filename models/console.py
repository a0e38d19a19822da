"""Agent console: canned responses, and the FAQ matches agents confirmed for customer questions."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import created_at_field, datetime_field, json_field


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


class QuickReply(SQLModel):
    title: str = Field(min_length=1, max_length=12)  # the button
    text: str = Field(min_length=1, max_length=200)  # what it sends


class WidgetConfigBase(SQLModel):
    """What the web-chat widget shows before the customer writes (admin: 渠道 page)."""

    welcome: str = Field(default="您好，我是智能客服小慧，请问有什么可以帮您？", min_length=1, max_length=300)
    quick_replies: list[QuickReply] = Field(
        default_factory=lambda: [
            QuickReply(title="查物流", text="怎么查询订单物流？"),
            QuickReply(title="退货", text="怎么申请退货？"),
            QuickReply(title="转人工", text="转人工"),
        ],
        max_length=6,
    )


class WidgetConfig(SQLModel, table=True):
    """One row (id 1); absent until an admin saves it (the defaults of WidgetConfigBase apply)."""

    id: int | None = Field(default=None, primary_key=True)
    welcome: str = Field(max_length=300)
    quick_replies: list[dict[str, str]] = json_field(list)
    updated_at: datetime | None = datetime_field()
