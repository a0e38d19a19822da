"""SCRM tables: orders, merges, custom attributes, consent, tag rules, segments, lifecycle,
customer value (RFM), care rules and the care delivery ledger, customer events."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import created_at_field, datetime_field, json_field


class OrderStatus(enum.StrEnum):
    PAID = "paid"
    REFUNDED = "refunded"
    CANCELLED = "cancelled"


class OrderBase(SQLModel):
    order_no: str = Field(min_length=1, max_length=64)
    amount: Decimal = Field(default=Decimal("0"), sa_type=sa.Numeric(12, 2), ge=0)
    status: OrderStatus = Field(default=OrderStatus.PAID, sa_type=sa.String(16))
    ordered_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    items: list[Any] = json_field(list)
    source: str = Field(default="import", max_length=16)


class Order(OrderBase, table=True):
    """An order imported from the shop; order_no is the idempotency key."""

    __tablename__ = "customer_order"
    __table_args__ = (
        sa.UniqueConstraint("order_no"),
        sa.Index("ix_customer_order_customer_time", "customer_id", "ordered_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id")
    created_at: datetime = created_at_field()
    updated_at: datetime | None = datetime_field()


class OrderRead(OrderBase):
    id: int
    customer_id: int


class MergeRecord(SQLModel, table=True):
    """One merge of customer `source_id` into `target_id`: what moved, so it can be undone."""

    id: int | None = Field(default=None, primary_key=True)
    source_id: int = Field(foreign_key="customer.id", index=True)
    target_id: int = Field(foreign_key="customer.id", index=True)
    reason: str = Field(default="explicit", max_length=32)  # unionid | phone | explicit
    moved: dict[str, Any] = json_field()  # table -> ids moved from source to target
    filled: dict[str, Any] = json_field()  # target profile fields filled from source (old values)
    actor: str = Field(default="system", max_length=64)
    created_at: datetime = created_at_field()
    undone_at: datetime | None = datetime_field()


class AttributeType(enum.StrEnum):
    STRING = "string"
    NUMBER = "number"
    DATE = "date"
    BOOL = "bool"
    ENUM = "enum"


class CustomAttributeDefBase(SQLModel):
    key: str = Field(min_length=1, max_length=32, regex=r"^[a-z][a-z0-9_]*$")
    label: str = Field(min_length=1, max_length=32)
    type: AttributeType = Field(default=AttributeType.STRING, sa_type=sa.String(16))
    options: list[str] = json_field(list)  # allowed values for enum


class CustomAttributeDef(CustomAttributeDefBase, table=True):
    __table_args__ = (sa.UniqueConstraint("key"),)

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = created_at_field()


class Consent(SQLModel, table=True):
    """Consent or opt-out per channel and purpose ("*" = every channel / every purpose)."""

    __table_args__ = (sa.UniqueConstraint("customer_id", "channel", "purpose"),)

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    channel: str = Field(default="*", max_length=16)
    purpose: str = Field(default="*", max_length=16)  # care | marketing | survey | *
    granted: bool = False  # False = opted out
    source: str = Field(default="customer", max_length=32)
    updated_at: datetime = created_at_field()


class TagRuleBase(SQLModel):
    name: str = Field(min_length=1, max_length=64)
    tag_name: str = Field(min_length=1, max_length=32)
    conditions: dict[str, Any] = json_field()
    enabled: bool = True
    # sync: the tag follows the rule (added and removed); add: only ever added
    mode: str = Field(default="sync", max_length=8)
    description: str = Field(default="", max_length=200)


class TagRule(TagRuleBase, table=True):
    __table_args__ = (sa.UniqueConstraint("name"),)

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = created_at_field()
    updated_at: datetime | None = datetime_field()
    last_run_at: datetime | None = datetime_field()
    last_count: int = 0


class SegmentBase(SQLModel):
    name: str = Field(min_length=1, max_length=64)
    conditions: dict[str, Any] = json_field()
    description: str = Field(default="", max_length=200)


class Segment(SegmentBase, table=True):
    __table_args__ = (sa.UniqueConstraint("name"),)

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = created_at_field()
    updated_at: datetime | None = datetime_field()


class LifecycleEvent(SQLModel, table=True):
    """A change of lifecycle stage (kind "stage") or member level (kind "level")."""

    __table_args__ = (sa.Index("ix_lifecycleevent_kind_time", "kind", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    # no FOREIGN KEY: rows are written set-wise from SELECTs over customer (a recompute may write a
    # million), and per-row FK triggers would cost more than the insert itself
    customer_id: int = Field(index=True)
    kind: str = Field(default="stage", max_length=8)
    from_value: str | None = Field(default=None, max_length=16)
    to_value: str = Field(max_length=16)
    created_at: datetime = created_at_field()


class CustomerValue(SQLModel, table=True):
    """Order metrics and RFM scores per customer, recomputed set-wise (scrm.value)."""

    customer_id: int = Field(primary_key=True)  # no FOREIGN KEY: rebuilt from customer, see LifecycleEvent
    order_count: int = 0
    total_spend: Decimal = Field(default=Decimal("0"), sa_type=sa.Numeric(14, 2))
    first_order_at: datetime | None = datetime_field()
    last_order_at: datetime | None = datetime_field()
    recency_days: int | None = None
    r: int = 1
    f: int = 1
    m: int = 1
    tier: str = Field(default="低价值", max_length=8, index=True)
    computed_at: datetime = created_at_field()


class CustomerEvent(SQLModel, table=True):
    """Countable interaction events for tag rules (NLU intent of an inbound message, ticket category …)."""

    __table_args__ = (sa.Index("ix_customerevent_lookup", "kind", "name", "customer_id", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    kind: str = Field(max_length=16)  # intent | ticket | survey …
    name: str = Field(max_length=64)
    created_at: datetime = created_at_field()


class CareKind(enum.StrEnum):
    BIRTHDAY = "birthday"
    FESTIVAL = "festival"
    INACTIVITY = "inactivity"
    LIFECYCLE = "lifecycle"
    WELCOME = "welcome"
    TICKET_SURVEY = "ticket_survey"
    NPS = "nps"
    LEVEL_UP = "level_up"
    WINBACK = "winback"  # customers the insight run rates at churn risk (高 by default), once a quarter


class CareRuleBase(SQLModel):
    name: str = Field(min_length=1, max_length=64)
    kind: CareKind = Field(sa_type=sa.String(16))
    params: dict[str, Any] = json_field()  # kind-specific: festivals, days, to_stage …
    segment_id: int | None = Field(default=None, foreign_key="segment.id")
    conditions: dict[str, Any] = json_field()  # extra audience conditions (rule DSL)
    channels: list[str] = json_field(list)  # preference order; empty = the customer's latest channel
    template: str = Field(min_length=1, max_length=2000)
    wechat_template: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)  # {template_id, data, url}
    send_hour: int = Field(default=10, ge=0, le=23)
    enabled: bool = True


class CareRule(CareRuleBase, table=True):
    __table_args__ = (sa.UniqueConstraint("name"),)

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = created_at_field()
    updated_at: datetime | None = datetime_field()
    last_run_at: datetime | None = datetime_field()


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # claimed in the ledger, not yet handed to the outbox
    SENT = "sent"  # handed to the outbox (delivery retried there)
    FAILED = "failed"
    SKIPPED = "skipped"  # a guard said no; `reason` says which
    OPTED_OUT = "opted_out"
    REPLIED = "replied"


class CareDelivery(SQLModel, table=True):
    """The care ledger: one row per (rule, customer, period), written before anything is sent."""

    __table_args__ = (
        sa.UniqueConstraint("rule_id", "customer_id", "period"),
        sa.Index("ix_caredelivery_customer_time", "customer_id", "created_at"),
        sa.Index("ix_caredelivery_rule_status", "rule_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    rule_id: int = Field(foreign_key="carerule.id")
    customer_id: int = Field(foreign_key="customer.id")
    period: str = Field(max_length=32)
    status: DeliveryStatus = Field(default=DeliveryStatus.PENDING, sa_type=sa.String(16))
    reason: str | None = Field(default=None, max_length=64)
    channel: str | None = Field(default=None, max_length=16)
    via: str | None = Field(default=None, max_length=16)  # service | template
    text: str = Field(default="", sa_type=sa.Text)
    message_id: int | None = Field(default=None, foreign_key="message.id")
    outbox_id: int | None = Field(default=None, foreign_key="outboxmessage.id")
    created_at: datetime = created_at_field()
    sent_at: datetime | None = datetime_field()


class CareDeliveryRead(SQLModel):
    id: int
    rule_id: int
    customer_id: int
    period: str
    status: DeliveryStatus
    reason: str | None
    channel: str | None
    via: str | None
    text: str
    created_at: datetime
    sent_at: datetime | None
