"""Factories for ticket tests: a controllable clock, the policy from config/tickets.yml, people."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Conversation, Customer, Presence, Role, User
from scrm.audit import Actor
from scrm.tickets import TicketPolicy

CST = ZoneInfo("Asia/Shanghai")


@dataclass
class Clock:
    """Stands still where a test puts it, for the policy and for every other reader of the time (the suite's
    time-machine clock), so a reply recorded by `utcnow()` and an SLA computed by the policy agree."""

    traveller: time_machine.Coordinates
    moment: dt.datetime

    def __post_init__(self) -> None:
        self.traveller.move_to(self.moment, tick=False)

    def __call__(self) -> dt.datetime:
        return self.moment

    def set(self, y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> dt.datetime:
        return self._at(dt.datetime(y, m, d, hh, mm, tzinfo=CST).astimezone(dt.UTC))

    def advance(self, **delta: float) -> dt.datetime:
        return self._at(self.moment + dt.timedelta(**delta))

    def _at(self, moment: dt.datetime) -> dt.datetime:
        self.moment = moment
        self.traveller.move_to(moment, tick=False)
        return moment


@pytest.fixture
def clock(pinned_clock: time_machine.Coordinates) -> Clock:
    return Clock(pinned_clock, dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC))  # Monday 10:00 in Shanghai


@pytest.fixture
def policy(clock: Clock) -> TicketPolicy:
    return TicketPolicy.load(clock=clock)


async def make_customer(session: AsyncSession, *, visitor: str = "v-1", **fields: object) -> Customer:
    customer = Customer(**fields)  # type: ignore[arg-type]
    session.add(customer)
    await session.flush()
    assert customer.id is not None
    session.add(Conversation(customer_id=customer.id, channel="webchat", app_id="default", external_id=visitor))
    await session.flush()
    return customer


async def make_user(
    session: AsyncSession,
    username: str,
    *,
    role: Role = Role.AGENT,
    skills: str = "",
    presence: Presence = Presence.ONLINE,
    max_concurrent: int = 5,
) -> User:
    user = User(
        username=username,
        role=role,
        skills=skills,
        presence=presence,
        password_hash="x",
        max_concurrent=max_concurrent,
    )
    session.add(user)
    await session.flush()
    return user


def actor_of(user: User) -> Actor:
    assert user.id is not None
    return Actor(id=user.id, name=user.username, role=str(user.role))


def aware(moment: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive datetimes (stored as UTC); PostgreSQL aware ones."""
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
