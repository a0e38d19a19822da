"""Customer insight tables: per-customer scores (churn, expected value, persona),
the persona catalogue (centroids kept from night to night) and the mined product rules."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import created_at_field, json_field


class CustomerInsight(SQLModel, table=True):
    """Rebuilt set-wise by the nightly insight run (scrm.insight.nightly); one row per customer with orders
    or interactions. No FOREIGN KEY, like customervalue: a million rows are rewritten at once."""

    customer_id: int = Field(primary_key=True)
    p_alive: float | None = None  # BG/NBD probability the customer is still active
    p_repeat_90d: float | None = None  # P(buys again within 90 days)
    expected_orders_90d: float | None = None
    expected_spend_90d: float | None = None
    churn_risk: str | None = Field(default=None, max_length=2, index=True)  # 高 | 中 | 低
    persona: str | None = Field(default=None, max_length=16, index=True)
    computed_at: datetime = created_at_field()


class Persona(SQLModel, table=True):
    """One customer group; `centroid` (standardised features) lets the next night keep its name."""

    __table_args__ = (sa.UniqueConstraint("name"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=16)
    size: int = 0
    centroid: list[Any] = json_field(list)
    traits: dict[str, Any] = json_field()  # feature -> mean in natural units, for the dashboard
    updated_at: datetime = created_at_field()


class ProductRule(SQLModel, table=True):
    """An association rule antecedent -> consequent over order lines (product names)."""

    id: int | None = Field(default=None, primary_key=True)
    antecedent: list[Any] = json_field(list)
    consequent: str = Field(max_length=128)
    support: float
    confidence: float
    lift: float
    computed_at: datetime = created_at_field()


class ComplaintAlert(SQLModel, table=True):
    """A complaint spike: one category on one channel in one hour well above its baseline."""

    __table_args__ = (sa.UniqueConstraint("category", "channel", "hour_start"),)

    id: int | None = Field(default=None, primary_key=True)
    category: str = Field(max_length=16)
    channel: str = Field(max_length=16)
    hour_start: datetime = Field(sa_type=sa.DateTime(timezone=True), index=True)  # UTC
    count: int
    expected: float
    ticket_ids: list[Any] = json_field(list)
    created_at: datetime = created_at_field()
