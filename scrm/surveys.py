"""Satisfaction answers: CSAT (1–5) after a resolved ticket; NPS (0–10) shares the table (`kind`).

A CSAT answer closes the loop: 4–5 closes the ticket, 1–3 or "没解决" reopens it and escalates to
a supervisor. The answer is stored as a SurveyResponse linked to the ticket, in the same transaction.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

from models.ticket import SurveyKind, SurveyResponse, Ticket, TicketStatus
from scrm import tickets
from scrm.audit import Actor
from scrm.errors import InvalidTransition, ValidationFailed

CUSTOMER = Actor(id=None, name="customer", role="customer")
# a score alone or followed by a separator: "5", "5分", "2，还没到" — but not "5天了还没到" or a phone number
_SEP = r"(?:$|[,，.。!！、:：;；~\s]+(.*)$)"
_DIGIT = re.compile(r"^\s*([1-5])\s*(?:分|星|颗星)?" + _SEP, re.S)
_CN_DIGITS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5}
_CN = re.compile(r"^\s*([一二两三四五])\s*(?:分|星|颗星)" + _SEP, re.S)
_WORDS: list[tuple[str, int]] = [
    ("非常满意", 5),
    ("很满意", 5),
    ("非常不满意", 1),
    ("很不满意", 1),
    ("不满意", 2),
    ("不太满意", 2),
    ("一般", 3),
    ("还行", 4),
    ("满意", 4),
]


@dataclass(frozen=True, slots=True)
class CsatAnswer:
    score: int | None  # None: only "没解决"
    resolved: bool | None  # False when the customer says it is not solved
    comment: str


def read_csat(text: str, reopen_words: list[str]) -> CsatAnswer | None:
    """A satisfaction answer in what the customer wrote, or None when it is something else.

    Understands "5", "５分 很快", "三星", "非常满意", "没解决，还是没收到货".
    """
    norm = unicodedata.normalize("NFKC", text).strip()
    if not norm:
        return None
    not_solved = any(w in norm for w in reopen_words)
    for pattern, to_int in ((_DIGIT, int), (_CN, _CN_DIGITS.__getitem__)):
        match = pattern.match(norm)
        if match:
            comment = (match.group(2) or "").strip()[:1000]
            return CsatAnswer(to_int(match.group(1)), False if not_solved else None, comment)
    if not_solved:
        return CsatAnswer(None, False, norm[:1000])
    if len(norm) <= 12:  # a short verdict, not a new question that happens to contain 满意
        for word, score in _WORDS:
            if word in norm:
                return CsatAnswer(score, None, norm if norm != word else "")
    return None


async def record_csat(
    session: AsyncSession,
    *,
    policy: tickets.TicketPolicy,
    ticket: Ticket,
    answer: CsatAnswer,
    channel: str = "",
    conversation_id: int | None = None,
) -> SurveyResponse:
    """Store the answer and close or reopen the ticket; the customer hears which."""
    if ticket.status != TicketStatus.RESOLVED or ticket.survey_sent_at is None:
        raise InvalidTransition(f"工单 {ticket.number} 没有待回答的满意度调查")
    if answer.score is not None and not 1 <= answer.score <= 5:
        raise ValidationFailed("满意度评分为 1–5 分")
    assert ticket.id is not None
    row = SurveyResponse(
        kind=SurveyKind.CSAT,
        customer_id=ticket.customer_id,
        ticket_id=ticket.id,
        conversation_id=conversation_id,
        score=answer.score,
        resolved=answer.resolved,
        comment=answer.comment,
        channel=channel,
        created_at=policy.now(),
    )
    session.add(row)
    satisfied = answer.resolved is not False and (answer.score or 0) >= policy.config.survey.close_min_score
    tickets.record_event(
        session,
        ticket,
        CUSTOMER,
        "survey",
        note=answer.comment,
        data={"score": answer.score, "resolved": answer.resolved, "satisfied": satisfied},
    )
    if satisfied:
        await tickets.close(session, policy=policy, ticket=ticket, actor=CUSTOMER, note=f"满意度 {answer.score} 分")
    else:
        said = f"{answer.score} 分" if answer.score is not None else "没解决"
        reason = f"满意度 {said}" + (f"：{answer.comment}" if answer.comment else "")
        await tickets.reopen(session, policy=policy, ticket=ticket, actor=CUSTOMER, reason=reason)
    return row
