"""Tags and which customers carry them."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import created_at_field


class TagBase(SQLModel):
    name: str = Field(min_length=1, max_length=32)
    group: str = Field(default="", max_length=32)
    color: str = Field(default="", max_length=16)


class Tag(TagBase, table=True):
    __table_args__ = (sa.UniqueConstraint("name"),)

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = created_at_field()


class TagCreate(TagBase):
    pass


class TagRead(TagBase):
    id: int


class CustomerTag(SQLModel, table=True):
    customer_id: int = Field(foreign_key="customer.id", primary_key=True)
    tag_id: int = Field(foreign_key="tag.id", primary_key=True, index=True)
    source: str = Field(default="manual", max_length=16)  # manual | rule | nlu | ticket
    created_at: datetime = created_at_field()
