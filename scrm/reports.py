"""The complaint report: the input for service improvement (归因分析与改进).

For tickets opened in [start, end): counts by category / severity / channel / status, SLA
attainment, first-response and resolution times in business hours (median, p90), reopen rate,
CSAT, and the top root causes.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from datetime import datetime, timedelta

from pydantic import BaseModel
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import aware, utcnow
from models.ticket import SurveyKind, SurveyResponse, Ticket, TicketStatus
from scrm.calendar import BusinessCalendar


class Durations(BaseModel):
    count: int = 0
    median_hours: float | None = None
    p90_hours: float | None = None


class ComplaintReport(BaseModel):
    start: datetime
    end: datetime
    total: int
    by_category: dict[str, int]
    by_severity: dict[str, int]
    by_channel: dict[str, int]
    by_status: dict[str, int]
    first_response_sla_met: float | None  # share of tickets with a first response due that met it
    resolution_sla_met: float | None
    first_response_business_hours: Durations
    resolution_business_hours: Durations
    reopen_rate: float | None  # of tickets resolved at least once
    csat_average: float | None
    csat_satisfied_rate: float | None  # share of answers scoring 4–5
    csat_responses: int
    escalated: int
    top_root_causes: list[tuple[str, int]]


async def complaint_report(
    session: AsyncSession, *, start: datetime, end: datetime, calendar: BusinessCalendar, now: datetime | None = None
) -> ComplaintReport:
    start, end = aware(start), aware(end)
    now = aware(now) if now else utcnow()
    rows = list(
        (
            await session.exec(
                select(Ticket)
                .where(col(Ticket.created_at) >= start, col(Ticket.created_at) < end)
                .order_by(col(Ticket.id))
            )
        ).all()
    )
    ids = [t.id for t in rows if t.id is not None]
    answers = (
        list(
            (
                await session.exec(
                    select(SurveyResponse).where(
                        SurveyResponse.kind == SurveyKind.CSAT, col(SurveyResponse.ticket_id).in_(ids)
                    )
                )
            ).all()
        )
        if ids
        else []
    )
    scores = [a.score for a in answers if a.score is not None]

    first_met = first_total = res_met = res_total = 0
    first_hours: list[float] = []
    res_hours: list[float] = []
    for t in rows:
        created = aware(t.created_at)
        if t.first_response_at is not None:
            first_hours.append(_hours(calendar.business_time_between(created, aware(t.first_response_at))))
        if t.first_response_due is not None and (
            t.first_response_at is not None or aware(t.first_response_due) <= now
        ):
            first_total += 1
            first_met += (
                t.first_response_at is not None
                and t.first_response_breached_at is None
                and (aware(t.first_response_at) <= aware(t.first_response_due))
            )
        resolved_at = t.resolved_at or (t.closed_at if t.status == TicketStatus.CLOSED else None)
        if resolved_at is not None:
            res_hours.append(_hours(calendar.business_time_between(created, aware(resolved_at))))
        if t.resolution_due is not None and (resolved_at is not None or aware(t.resolution_due) <= now):
            res_total += 1
            res_met += resolved_at is not None and t.resolution_breached_at is None
    ever_resolved = [t for t in rows if t.resolved_at is not None or t.reopen_count or t.status == TicketStatus.CLOSED]
    return ComplaintReport(
        start=start.astimezone(calendar.tz),  # local: the window reads as the days that were asked for
        end=end.astimezone(calendar.tz),
        total=len(rows),
        by_category=dict(Counter(t.category for t in rows).most_common()),
        by_severity=dict(sorted(Counter(str(t.severity) for t in rows).items())),
        by_channel=dict(Counter(t.channel for t in rows).most_common()),
        by_status=dict(Counter(str(t.status) for t in rows).most_common()),
        first_response_sla_met=_ratio(first_met, first_total),
        resolution_sla_met=_ratio(res_met, res_total),
        first_response_business_hours=_durations(first_hours),
        resolution_business_hours=_durations(res_hours),
        reopen_rate=_ratio(sum(1 for t in ever_resolved if t.reopen_count), len(ever_resolved)),
        csat_average=round(statistics.fmean(scores), 2) if scores else None,
        csat_satisfied_rate=_ratio(sum(1 for s in scores if s >= 4), len(scores)),
        csat_responses=len(answers),
        escalated=sum(1 for t in rows if t.escalation_level),
        top_root_causes=Counter(t.root_cause for t in rows if t.root_cause).most_common(10),
    )


def _durations(values: list[float]) -> Durations:
    if not values:
        return Durations()
    ordered = sorted(values)
    p90 = ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]  # nearest rank
    return Durations(count=len(values), median_hours=round(statistics.median(ordered), 2), p90_hours=round(p90, 2))


def _hours(delta: timedelta) -> float:
    return delta.total_seconds() / 3600


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None
