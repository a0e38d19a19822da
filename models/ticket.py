"""Complaint tickets, their event history and satisfaction answers."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import created_at_field, datetime_field, json_field


class TicketStatus(enum.StrEnum):
    NEW = "new"
    TRIAGED = "triaged"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    WAITING_CUSTOMER = "waiting_customer"
    RESOLVED = "resolved"
    REOPENED = "reopened"
    CLOSED = "closed"


OPEN_STATUSES = frozenset(
    {
        TicketStatus.NEW,
        TicketStatus.TRIAGED,
        TicketStatus.ASSIGNED,
        TicketStatus.IN_PROGRESS,
        TicketStatus.WAITING_CUSTOMER,
        TicketStatus.REOPENED,
    }
)


class Severity(enum.StrEnum):
    P1 = "P1"  # most urgent
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"


# One Column object shared by the field and the mapper so SQLAlchemy bumps and checks it on every UPDATE.
_version_column = sa.Column("version", sa.Integer, nullable=False, server_default="1")


class TicketBase(SQLModel):
    category: str = Field(default="待分类", max_length=16, index=True)
    severity: Severity = Field(default=Severity.P3, sa_type=sa.String(2), index=True)
    order_no: str | None = Field(default=None, max_length=64, index=True)
    subject: str = Field(default="", max_length=120)
    description: str = Field(default="", sa_type=sa.Text)
    contact_preference: str | None = Field(default=None, max_length=16)  # chat | phone | none
    contact_phone: str | None = Field(default=None, max_length=32)


class Ticket(TicketBase, table=True):
    # Optimistic concurrency: every UPDATE is `… WHERE version = :seen`; a lost race is a 409.
    __mapper_args__: ClassVar[dict[str, Any]] = {"version_id_col": _version_column}

    id: int | None = Field(default=None, primary_key=True)
    number: str | None = Field(default=None, max_length=24, unique=True)  # customer-facing, e.g. 20261123-00042
    customer_id: int = Field(foreign_key="customer.id", index=True)
    conversation_id: int | None = Field(default=None, foreign_key="conversation.id", index=True)
    channel: str = Field(default="api", max_length=16)  # where it came in: webchat, wechat_oa, api, import …
    status: TicketStatus = Field(default=TicketStatus.NEW, sa_type=sa.String(16), index=True)
    version: int = Field(default=1, sa_column=_version_column)
    category_confidence: float = 0.0
    category_source: str = Field(default="default", max_length=16)  # nlu | keyword | agent | default
    severity_reason: str = Field(default="", max_length=500)
    skill_group: str = Field(default="", max_length=32)
    assignee_id: int | None = Field(default=None, foreign_key="user.id", index=True)
    assigned_at: datetime | None = datetime_field()
    escalated_to_id: int | None = Field(default=None, foreign_key="user.id")
    escalation_level: int = 0
    escalated_at: datetime | None = datetime_field()
    reopen_count: int = 0
    root_cause: str | None = Field(default=None, max_length=64)
    resolution_code: str | None = Field(default=None, max_length=32)
    resolution_note: str | None = Field(default=None, max_length=2000)
    # SLA (due times computed in business hours at open/escalation)
    first_response_due: datetime | None = datetime_field(index=True)
    resolution_due: datetime | None = datetime_field(index=True)
    first_response_at: datetime | None = datetime_field()
    # 80 % points of the targets, in business time, so the scheduler can select them in SQL
    first_response_warn_at: datetime | None = datetime_field()
    resolution_warn_at: datetime | None = datetime_field()
    first_response_warned_at: datetime | None = datetime_field()
    resolution_warned_at: datetime | None = datetime_field()
    first_response_breached_at: datetime | None = datetime_field()
    resolution_breached_at: datetime | None = datetime_field()
    # customer notices, each sent once per round (received / handling / resolved + survey)
    handling_notified_at: datetime | None = datetime_field()
    survey_sent_at: datetime | None = datetime_field()
    waiting_since: datetime | None = datetime_field(index=True)
    reminder_sent_at: datetime | None = datetime_field()
    created_at: datetime = created_at_field()
    updated_at: datetime | None = datetime_field()
    resolved_at: datetime | None = datetime_field()
    closed_at: datetime | None = datetime_field()
    # a scheduler worker's claim on the row (portable across SQLite and PostgreSQL)
    claimed_until: datetime | None = datetime_field()


class TicketCreate(SQLModel):
    customer_id: int
    description: str = Field(min_length=1, max_length=4000)
    order_no: str | None = Field(default=None, max_length=64)
    subject: str = Field(default="", max_length=120)
    category: str | None = Field(default=None, max_length=16)  # None: predicted
    severity: Severity | None = None  # None: from the rules
    contact_preference: str | None = Field(default=None, max_length=16)
    contact_phone: str | None = Field(default=None, max_length=32)
    channel: str = Field(default="api", max_length=16)


class TicketRead(TicketBase):
    id: int
    number: str | None
    customer_id: int
    conversation_id: int | None
    channel: str
    status: TicketStatus
    version: int
    category_confidence: float
    category_source: str
    severity_reason: str
    skill_group: str
    assignee_id: int | None
    assigned_at: datetime | None
    escalated_to_id: int | None
    escalation_level: int
    escalated_at: datetime | None
    reopen_count: int
    root_cause: str | None
    resolution_code: str | None
    resolution_note: str | None
    first_response_due: datetime | None
    resolution_due: datetime | None
    first_response_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    created_at: datetime
    updated_at: datetime | None


class TicketEvent(SQLModel, table=True):
    """One thing that happened to a ticket: who, when, from which status to which, and why."""

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    kind: str = Field(max_length=24)  # opened, transition, assigned, message, sla_warning, escalated, survey …
    actor_id: int | None = Field(default=None, foreign_key="user.id")
    actor: str = Field(default="system", max_length=64)
    from_status: str | None = Field(default=None, max_length=16)
    to_status: str | None = Field(default=None, max_length=16)
    note: str = Field(default="", max_length=2000)
    data: dict[str, Any] = json_field()
    created_at: datetime = created_at_field()


class TicketEventRead(SQLModel):
    id: int
    ticket_id: int
    kind: str
    actor: str
    from_status: str | None
    to_status: str | None
    note: str
    data: dict[str, Any]
    created_at: datetime


class SurveyKind(enum.StrEnum):
    CSAT = "csat"  # 1–5 after a ticket
    NPS = "nps"  # 0–10 relationship survey (SCRM care)


class SurveyResponse(SQLModel, table=True):
    """A customer's satisfaction answer: CSAT for a ticket, or NPS."""

    __table_args__ = (sa.Index("ix_surveyresponse_kind_time", "kind", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: SurveyKind = Field(default=SurveyKind.CSAT, sa_type=sa.String(8))
    customer_id: int = Field(foreign_key="customer.id", index=True)
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id", index=True)
    conversation_id: int | None = Field(default=None, foreign_key="conversation.id")
    score: int | None = None  # None: the customer only said 没解决 / gave words
    resolved: bool | None = None  # the customer's own "solved?" answer when given
    comment: str = Field(default="", max_length=1000)
    channel: str = Field(default="", max_length=16)
    created_at: datetime = created_at_field()


class SurveyResponseRead(SQLModel):
    id: int
    kind: SurveyKind
    customer_id: int
    ticket_id: int | None
    score: int | None
    resolved: bool | None
    comment: str
    channel: str
    created_at: datetime
