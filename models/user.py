"""Staff users (agents, supervisors, admins) and their sessions."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import created_at_field, datetime_field


class Role(enum.StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class Presence(enum.StrEnum):
    ONLINE = "online"
    BUSY = "busy"
    AWAY = "away"
    OFFLINE = "offline"


class UserBase(SQLModel):
    username: str = Field(min_length=2, max_length=32)
    display_name: str = Field(default="", max_length=32)
    role: Role = Field(default=Role.AGENT, sa_type=sa.String(16))
    skills: str = Field(default="", max_length=128)  # comma-separated skill groups
    max_concurrent: int = Field(default=5, ge=1, le=50)
    active: bool = True


class User(UserBase, table=True):
    __table_args__ = (sa.UniqueConstraint("username"),)

    id: int | None = Field(default=None, primary_key=True)
    password_hash: str = Field(max_length=256)
    presence: Presence = Field(default=Presence.OFFLINE, sa_type=sa.String(16))
    last_seen_at: datetime | None = datetime_field()  # the console's last heartbeat (see scrm.presence)
    failed_logins: int = 0
    locked_until: datetime | None = datetime_field()
    created_at: datetime = created_at_field()


class UserCreate(UserBase):
    password: str = Field(min_length=8, max_length=128)


class UserUpdate(SQLModel):
    display_name: str | None = Field(default=None, max_length=32)  # the columns' lengths (PostgreSQL enforces them)
    role: Role | None = None
    skills: str | None = Field(default=None, max_length=128)
    max_concurrent: int | None = Field(default=None, ge=1, le=50)
    active: bool | None = None
    password: str | None = Field(default=None, min_length=8, max_length=128)


class UserRead(UserBase):
    id: int
    presence: Presence


class UserSession(SQLModel, table=True):
    """Server-side login session; the cookie holds only the random id."""

    id: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="user.id", index=True)
    csrf_token: str = Field(max_length=64)
    created_at: datetime = created_at_field()
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
