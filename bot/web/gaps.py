"""Content gaps (未解决问题) and FAQ hygiene.

The bot marks its clarify questions and fallbacks (`meta.gap`); this page groups the customer
messages they answered by similarity, so a supervisor sees what the FAQ lacks, and turns a
group into similar questions of an existing FAQ or a draft FAQ in one click. Messages whose
wording became a similar question or an agent-confirmed match since are resolved and leave the
list. On save, the FAQ editor asks `check` for entries the bot would confuse with the new one.
"""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web
from pydantic import BaseModel, Field
from sqlalchemy.orm import aliased
from sqlmodel import col, select

from bot.keys import db_key, nlu_key
from bot.web.admin import actor_of, faq_changed
from bot.web.api import SUPERVISOR, ApiRouter
from models import (
    Direction,
    FaqConfirmation,
    FaqEntry,
    FaqEntryCreate,
    FaqEntryRead,
    FaqEntryUpdate,
    Message,
    Sender,
    User,
    utcnow,
)
from nlu.gaps import group_questions
from nlu.text import normalize
from scrm import faq as faq_verbs
from scrm.db import transaction
from scrm.errors import ValidationFailed

router = ApiRouter("admin")
SCAN_LIMIT = 5000  # newest gap messages read per request
MAX_GROUPS = 50
EXAMPLES = 8
DRAFT_ANSWER = "（草稿：请填写答案后启用）"


class GapQuery(BaseModel):
    days: int = Field(default=7, ge=1, le=90)


class GapExample(BaseModel):
    text: str
    count: int


class GapSuggestion(BaseModel):
    faq_id: int
    question: str
    score: float


class GapGroup(BaseModel):
    leader: str
    count: int
    fallback: int
    clarify: int
    examples: list[GapExample]
    suggestion: GapSuggestion | None


class GapReport(BaseModel):
    days: int
    messages: int
    groups: list[GapGroup]


class GapTexts(BaseModel):
    texts: list[str] = Field(min_length=1, max_length=50)


class GapAssign(GapTexts):
    faq_id: int = Field(ge=1)


class FaqCheck(BaseModel):
    question: str = Field(min_length=1, max_length=200)
    similar_questions: list[str] = Field(default=[], max_length=200)
    faq_id: int | None = None  # the entry being edited (not its own near duplicate)


class NearFaq(BaseModel):
    faq_id: int
    question: str
    answer: str
    score: float
    asked_as: str  # the new wording that comes near it


async def _gap_messages(request: web.Request, days: int) -> list[tuple[str, str]]:
    """(customer text, "fallback" | "clarify") of the gap replies since `days` ago, unresolved."""
    reply = aliased(Message)
    since = utcnow() - timedelta(days=days)
    async with request.app[db_key]() as session:
        rows = (
            await session.exec(
                select(Message.id, Message.text, reply.payload)
                .join(reply, col(reply.reply_to_id) == col(Message.id))
                .where(Message.direction == Direction.IN, reply.sender == Sender.BOT, col(reply.created_at) >= since)
                .order_by(col(reply.id).desc())
                .limit(SCAN_LIMIT)
            )
        ).all()
        known = {normalize(t) for t in (await session.exec(select(FaqConfirmation.text))).all()}
        for entry in (await session.exec(select(FaqEntry))).all():
            known.update(normalize(t) for t in (entry.question, *entry.similar_questions))
    seen: set[int | None] = set()
    out = []
    for message_id, text, payload in rows:
        kind = ((payload or {}).get("meta") or {}).get("gap")
        if kind in ("fallback", "clarify") and message_id not in seen and text.strip() and normalize(text) not in known:
            seen.add(message_id)
            out.append((text.strip(), str(kind)))
    return out


@router.get("/admin/gaps", roles=SUPERVISOR, query=GapQuery, response=GapReport)
async def list_gaps(request: web.Request, user: User, query: GapQuery) -> GapReport:
    """未解决问题: what the bot fell back on or clarified, grouped by similarity, largest first."""
    messages = await _gap_messages(request, query.days)
    kinds: dict[str, list[str]] = {}
    for text, kind in messages:
        kinds.setdefault(text, []).append(kind)
    nlu = request.app[nlu_key]
    model = nlu.model
    # a suggestion the bot itself would not even offer in a clarify question is no suggestion
    floor = model.faq.thresholds.clarify if model is not None and model.faq is not None else 1.0
    groups = []
    for group in group_questions(text for text, _ in messages)[:MAX_GROUPS]:
        asked = [k for text in group.texts for k in kinds[text]]
        best = [h for h in nlu.suggest(group.leader, 1) if h.score >= floor]
        groups.append(
            GapGroup(
                leader=group.leader,
                count=group.count,
                fallback=asked.count("fallback"),
                clarify=asked.count("clarify"),
                examples=[GapExample(text=t, count=n) for t, n in group.texts.most_common(EXAMPLES)],
                suggestion=GapSuggestion(faq_id=best[0].faq_id, question=best[0].question, score=best[0].score)
                if best
                else None,
            )
        )
    return GapReport(days=query.days, messages=len(messages), groups=groups)


def _texts(body: GapTexts) -> list[str]:
    texts = list(dict.fromkeys(t.strip() for t in body.texts if t.strip()))
    if not texts or any(len(t) > 200 for t in texts):
        raise ValidationFailed("问题不能为空，且每条不超过 200 字")
    return texts


@router.post("/admin/gaps/assign", roles=SUPERVISOR, body=GapAssign, response=FaqEntryRead)
async def assign_gap(request: web.Request, user: User, body: GapAssign) -> FaqEntryRead:
    """Add a group's questions to an FAQ as similar questions (the bot learns them at once)."""
    texts = _texts(body)
    async with transaction(request.app[db_key]) as session:
        faq = await faq_verbs.get_faq(session, body.faq_id)
        have = {normalize(t) for t in (faq.question, *faq.similar_questions)}
        similar = [*faq.similar_questions, *(t for t in texts if normalize(t) not in have)]
        row = await faq_verbs.update_faq(
            session, faq_id=body.faq_id, data=FaqEntryUpdate(similar_questions=similar), actor=actor_of(user)
        )
        result = FaqEntryRead.model_validate(row)
    await faq_changed(request)
    return result


@router.post("/admin/gaps/draft", roles=SUPERVISOR, body=GapTexts, response=FaqEntryRead, status=201)
async def draft_gap(request: web.Request, user: User, body: GapTexts) -> FaqEntryRead:
    """A new FAQ from a group, disabled until someone writes its answer."""
    texts = _texts(body)
    data = FaqEntryCreate(question=texts[0], similar_questions=texts[1:], answer=DRAFT_ANSWER, enabled=False)
    async with transaction(request.app[db_key]) as session:
        row = await faq_verbs.create_faq(session, data=data, actor=actor_of(user))
        return FaqEntryRead.model_validate(row)


@router.post("/admin/faqs/check", roles=SUPERVISOR, body=FaqCheck, response=list[NearFaq])
async def check_faq(request: web.Request, user: User, body: FaqCheck) -> list[NearFaq]:
    """Existing entries the bot would answer for this question or its similar questions."""
    nlu = request.app[nlu_key]
    model = nlu.model
    if model is None or model.faq is None:
        return []
    floor = model.faq.thresholds.answer
    near: dict[int, tuple[float, str]] = {}
    for text in dict.fromkeys(t.strip() for t in (body.question, *body.similar_questions) if t.strip()):
        for hit in nlu.suggest(text, 3):
            if hit.faq_id != body.faq_id and hit.score >= floor and hit.score > near.get(hit.faq_id, (0.0, ""))[0]:
                near[hit.faq_id] = (hit.score, text)
    if not near:
        return []
    async with request.app[db_key]() as session:
        rows = {r.id: r for r in (await session.exec(select(FaqEntry).where(col(FaqEntry.id).in_(near)))).all()}
    return [
        NearFaq(faq_id=fid, question=rows[fid].question, answer=rows[fid].answer, score=round(score, 3), asked_as=text)
        for fid, (score, text) in sorted(near.items(), key=lambda kv: -kv[1][0])
        if fid in rows
    ]


def setup(app: web.Application) -> None:
    router.install(app)
