"""NPS (0–10): read the customer's answer to a care NPS question on any channel, store it, report per period.

Promoters score 9–10, passives 7–8, detractors 0–6; NPS = %promoters − %detractors.
Answers are SurveyResponse rows with kind "nps" (the table the tickets work owns for CSAT too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import utcnow
from models.scrm import CareDelivery, CareKind, CareRule, DeliveryStatus
from models.ticket import SurveyKind, SurveyResponse

ANSWER_WINDOW = timedelta(days=7)
_CN = {"零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}
_SEP = r"(?:$|[,，.。!！、:：;；~\s]+(.*)$)"
_DIGITS = re.compile(r"^\s*(10|[0-9])\s*(?:分)?" + _SEP, re.S)
_CN_RE = re.compile(r"^\s*([零一二两三四五六七八九十])\s*分" + _SEP, re.S)


@dataclass(frozen=True, slots=True)
class NpsAnswer:
    score: int
    comment: str


def parse_nps(text: str) -> NpsAnswer | None:
    """ "9", "10分", "八分", "7，还行" -> a score; "5天" or a phone number -> None."""
    text = text.strip().translate(str.maketrans("０１２３４５６７８９", "0123456789"))
    match = _DIGITS.match(text)
    if match:
        return NpsAnswer(int(match.group(1)), (match.group(2) or "").strip()[:1000])
    match = _CN_RE.match(text)
    if match:
        return NpsAnswer(_CN[match.group(1)], (match.group(2) or "").strip()[:1000])
    return None


def category(score: int) -> str:
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


async def awaiting_nps(session: AsyncSession, *, customer_id: int, now: datetime | None = None) -> CareDelivery | None:
    """The NPS question sent to this customer in the last 7 days that has no answer yet."""
    now = now or utcnow()
    delivery = (
        await session.exec(
            select(CareDelivery)
            .join(CareRule, col(CareRule.id) == CareDelivery.rule_id)
            .where(
                col(CareDelivery.customer_id) == customer_id,
                col(CareRule.kind) == CareKind.NPS,
                col(CareDelivery.status).in_([DeliveryStatus.SENT, DeliveryStatus.REPLIED]),
                col(CareDelivery.sent_at) >= now - ANSWER_WINDOW,
                col(CareDelivery.sent_at) <= now,
            )
            .order_by(col(CareDelivery.sent_at).desc())
        )
    ).first()
    if delivery is None or delivery.sent_at is None:
        return None
    answered = (
        await session.exec(
            select(SurveyResponse.id).where(
                col(SurveyResponse.customer_id) == customer_id,
                col(SurveyResponse.kind) == SurveyKind.NPS,
                col(SurveyResponse.created_at) >= delivery.sent_at,
            )
        )
    ).first()
    return None if answered else delivery


async def record_nps(
    session: AsyncSession,
    *,
    customer_id: int,
    answer: NpsAnswer,
    channel: str = "",
    conversation_id: int | None = None,
    delivery: CareDelivery | None = None,
    now: datetime | None = None,
) -> SurveyResponse:
    row = SurveyResponse(
        kind=SurveyKind.NPS,
        customer_id=customer_id,
        conversation_id=conversation_id,
        score=answer.score,
        comment=answer.comment,
        channel=channel[:16],
        created_at=now or utcnow(),
    )
    session.add(row)
    if delivery is not None:
        delivery.status = DeliveryStatus.REPLIED
        session.add(delivery)
    await session.flush()
    return row


def _bucket(session: AsyncSession, column: Any, period: str) -> Any:
    assert session.bind is not None
    if session.bind.dialect.name == "postgresql":
        trunc = sa.func.date_trunc(period, sa.func.timezone("Asia/Shanghai", column))
        return sa.func.to_char(trunc, "YYYY-MM-DD" if period == "week" else "YYYY-MM")
    local = sa.func.datetime(column, "+8 hours")
    if period == "week":
        return sa.func.date(local, "weekday 1", "-7 days")
    return sa.func.strftime("%Y-%m", local)


async def nps_report(
    session: AsyncSession, *, start: datetime, end: datetime, period: str = "month"
) -> list[dict[str, Any]]:
    """Per period (month or week, Beijing time): responses, promoters, passives, detractors, NPS."""
    if period not in ("month", "week"):
        period = "month"
    bucket = _bucket(session, col(SurveyResponse.created_at), period).label("period")
    score = col(SurveyResponse.score)
    stmt = (
        sa.select(
            bucket,
            sa.func.count(),
            sa.func.sum(sa.case((score >= 9, 1), else_=0)),
            sa.func.sum(sa.case((sa.and_(score >= 7, score <= 8), 1), else_=0)),
            sa.func.sum(sa.case((score <= 6, 1), else_=0)),
        )
        .where(
            col(SurveyResponse.kind) == SurveyKind.NPS,
            score.is_not(None),
            col(SurveyResponse.created_at) >= start,
            col(SurveyResponse.created_at) < end,
        )
        .group_by(bucket)
        .order_by(bucket)
    )
    rows = []
    for label, n, promoters, passives, detractors in (await session.execute(stmt)).all():
        n = int(n)
        rows.append(
            {
                "period": str(label),
                "responses": n,
                "promoters": int(promoters or 0),
                "passives": int(passives or 0),
                "detractors": int(detractors or 0),
                "nps": round(100 * (int(promoters or 0) - int(detractors or 0)) / n, 1) if n else None,
            }
        )
    return rows
