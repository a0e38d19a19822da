"""Customers and the channel identities that point at them."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import created_at_field, datetime_field, json_field


class CustomerBase(SQLModel):
    name: str | None = Field(default=None, max_length=64)
    phone: str | None = Field(default=None, max_length=32, index=True)
    gender: str | None = Field(default=None, max_length=8)
    birthday: date | None = None
    region: str | None = Field(default=None, max_length=64)


class Customer(CustomerBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = created_at_field()
    last_active_at: datetime | None = datetime_field(index=True)
    attributes: dict[str, Any] = json_field()
    # Set when this customer was merged into another; the row stays so a merge can be undone.
    merged_into_id: int | None = Field(default=None, foreign_key="customer.id", index=True)
    # SCRM profile (scrm work, migration 0006): birthday month/day (lunar ones when birthday_calendar
    # is "lunar") are columns so care runs find today's birthdays with an index.
    phone_verified: bool = False
    birthday_calendar: str = Field(default="solar", max_length=8)
    birth_month: int | None = None
    birth_day: int | None = None
    lifecycle_stage: str = Field(default="潜在", max_length=8)  # unindexed: recomputes update it HOT
    lifecycle_changed_at: datetime | None = datetime_field()
    member_level: str | None = Field(default=None, max_length=16)
    points: int = 0
    erased_at: datetime | None = datetime_field()

    __table_args__ = (sa.Index("ix_customer_birth", "birthday_calendar", "birth_month", "birth_day"),)


class CustomerCreate(CustomerBase):
    pass


class CustomerRead(CustomerBase):
    id: int
    created_at: datetime
    last_active_at: datetime | None


class IdentityStatus(enum.StrEnum):
    ACTIVE = "active"
    UNFOLLOWED = "unfollowed"


class ChannelIdentity(SQLModel, table=True):
    """A customer's id on one channel account (openid on an Official Account, external_userid …)."""

    __table_args__ = (sa.UniqueConstraint("channel", "app_id", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    channel: str = Field(max_length=16)
    app_id: str = Field(max_length=64)  # configured account name or WeChat app id
    external_id: str = Field(max_length=128)
    unionid: str | None = Field(default=None, max_length=128, index=True)
    status: IdentityStatus = Field(default=IdentityStatus.ACTIVE, sa_type=sa.String(16))
    follow_user: str | None = Field(default=None, max_length=64)  # WeCom staff member who added them
    created_at: datetime = created_at_field()
    last_inbound_at: datetime | None = datetime_field()
