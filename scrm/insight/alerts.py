"""Complaint spike alerts on the live ticket table: hourly counts per category and channel, read with one
grouped query, checked by scrm.insight.spikes, written as `ComplaintAlert` rows (one per series and hour,
updated while the hour runs) with the tickets behind them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.insight import ComplaintAlert
from models.ticket import Ticket
from scrm.calendar import BusinessCalendar
from scrm.insight import spikes
from scrm.value import dialect_name

UNIX_JULIAN = 2440587.5


def _hour_number(session: AsyncSession, ts: Any) -> Any:
    """Hours since 1970-01-01 UTC as an integer, on both databases."""
    if dialect_name(session) == "postgresql":
        return sa.cast(sa.func.floor(sa.func.extract("epoch", ts) / 3600), sa.Integer)
    return sa.cast(sa.func.floor((sa.func.julianday(ts) - UNIX_JULIAN) * 24 + 1e-7), sa.Integer)


def _hour_of(number: int) -> datetime:
    return datetime.fromtimestamp(number * 3600, tz=UTC)


async def scan(
    session: AsyncSession, *, now: datetime, calendar: BusinessCalendar | None = None
) -> list[ComplaintAlert]:
    """Check the running hour of every series; returns the alerts created or grown by this scan."""
    calendar = calendar or BusinessCalendar()
    hour = spikes.hour_start(now)
    since = hour - timedelta(days=spikes.LOOKBACK_DAYS + 1)
    number = _hour_number(session, Ticket.created_at)
    rows = (await session.execute(
        sa.select(col(Ticket.category), col(Ticket.channel), number, sa.func.count())
        .where(col(Ticket.created_at) >= since, col(Ticket.created_at) <= now)
        .group_by(col(Ticket.category), col(Ticket.channel), number)
    )).all()  # fmt: skip
    series: dict[spikes.Series, dict[datetime, int]] = {}
    for category, channel, n, count in rows:
        series.setdefault((category, channel), {})[_hour_of(int(n))] = int(count)
    changed = []
    for key, counts in series.items():
        result = spikes.check(key, counts, hour, calendar)
        if result.alert:
            changed.append(await _record(session, result, now))
    return [a for a in changed if a is not None]


async def _record(session: AsyncSession, result: spikes.Check, now: datetime) -> ComplaintAlert | None:
    category, channel = result.series
    ids = list((await session.exec(
        select(Ticket.id).where(col(Ticket.category) == category, col(Ticket.channel) == channel,
                                col(Ticket.created_at) >= result.hour, col(Ticket.created_at) <= now)
        .order_by(col(Ticket.id))
    )).all())  # fmt: skip
    existing = (await session.exec(select(ComplaintAlert).where(
        col(ComplaintAlert.category) == category, col(ComplaintAlert.channel) == channel,
        col(ComplaintAlert.hour_start) == result.hour))).first()  # fmt: skip
    if existing is not None:
        if existing.count >= result.count:
            return None
        existing.count, existing.ticket_ids = result.count, ids
        session.add(existing)
        return existing
    alert = ComplaintAlert(category=category, channel=channel, hour_start=result.hour, count=result.count,
                           expected=round(result.expected, 2), ticket_ids=ids, created_at=now)  # fmt: skip
    session.add(alert)
    await session.flush()
    return alert
