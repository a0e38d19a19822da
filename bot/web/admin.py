"""Admin API: FAQ (CRUD, 试一试, import/export), users and roles, channel settings, audit log, dashboard.

FAQ changes are committed, applied to this worker's answer catalog at once, and announced on
the bus (`FAQ_CHANGED`) so every worker reloads its answers and retrains its NLU — no restart.
"""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import date, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
import structlog
import yaml
from aiohttp import web
from pydantic import BaseModel, Field
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.engine import texts
from bot.faq_sync import announce_change, load_faq_docs
from bot.keys import bus_key, db_key, engine_key, nlu_key, settings_key
from bot.web.api import ADMIN, SUPERVISOR, ApiRouter, Day, path_id
from bot.web.auth import announce_sessions_ended, lift_throttle
from models import (
    AuditLog,
    AuditLogRead,
    Conversation,
    Customer,
    Direction,
    FaqEntry,
    FaqEntryCreate,
    FaqEntryRead,
    FaqEntryUpdate,
    Message,
    Sender,
    User,
    UserCreate,
    UserRead,
    UserSession,
    UserUpdate,
    aware,
    utcnow,
)
from scrm import faq as faq_verbs
from scrm import spreadsheet
from scrm import users as user_verbs
from scrm.audit import Actor, record_audit
from scrm.calendar import BUSINESS_TZ, day_bounds, local_today
from scrm.db import transaction
from scrm.errors import ValidationFailed

log = structlog.get_logger(__name__)
router = ApiRouter("admin")
MAX_IMPORT_ROWS = 5000
SERVING_WAIT = 120.0  # seconds a save waits for every worker to retrain


def actor_of(user: User) -> Actor:
    return Actor(id=user.id, name=user.username, role=str(user.role))


# --- FAQ ---------------------------------------------------------------------------------


class FaqQuery(BaseModel):
    q: str = Field(default="", max_length=100)
    category: str = Field(default="", max_length=32)
    enabled: Literal["", "true", "false"] = ""


class CategoryCount(BaseModel):
    category: str
    count: int


class TryBody(BaseModel):
    text: str = Field(min_length=1, max_length=500)


class TryHit(BaseModel):
    faq_id: int
    question: str
    score: float


class TryResult(BaseModel):
    text: str
    intent: str
    confidence: float
    decision: str  # answer | clarify | fallback
    answer: str  # what the bot would say
    faq_id: int | None
    hits: list[TryHit]


class ExportQuery(BaseModel):
    format: Literal["csv", "xlsx", "rasa"] = "csv"


class ImportResult(BaseModel):
    created: int
    updated: int
    unchanged: int
    errors: list[str]


async def faq_changed(request: web.Request) -> None:
    """After commit: this worker answers from the new FAQ at once; every worker (this one too) retrains.
    With `?wait=serving` (the admin page) the response waits until every worker serves the new model."""
    app = request.app
    docs, _pairs = await load_faq_docs(app[db_key])
    app[engine_key].services.faq.replace(docs)
    wait = SERVING_WAIT if request.query.get("wait") == "serving" else 0.0
    if not await announce_change(app[bus_key], app[settings_key].workers, {"entries": len(docs)}, wait) and wait:
        log.warning("faq_not_serving_yet", waited=wait)


@router.get("/admin/faqs", roles=SUPERVISOR, query=FaqQuery, response=list[FaqEntryRead])
async def list_faqs(request: web.Request, user: User, query: FaqQuery) -> list[FaqEntryRead]:
    """FAQ entries, searchable by text and filterable by category and state."""
    async with request.app[db_key]() as session:
        rows = await faq_verbs.list_faqs(session, query=query.q.strip(), category=query.category)
    if query.enabled:
        wanted = query.enabled == "true"
        rows = [r for r in rows if r.enabled == wanted]
    return [FaqEntryRead.model_validate(r) for r in rows]


@router.get("/admin/faq-categories", roles=SUPERVISOR, response=list[CategoryCount])
async def faq_categories(request: web.Request, user: User) -> list[CategoryCount]:
    """Categories with how many entries each holds."""
    async with request.app[db_key]() as session:
        rows = (
            await session.exec(
                select(FaqEntry.category, func.count())
                .group_by(col(FaqEntry.category))
                .order_by(col(FaqEntry.category))
            )
        ).all()
    return [CategoryCount(category=c, count=n) for c, n in rows]


@router.post("/admin/faqs", roles=SUPERVISOR, body=FaqEntryCreate, response=FaqEntryRead, status=201)
async def create_faq(request: web.Request, user: User, body: FaqEntryCreate) -> FaqEntryRead:
    """Add an FAQ entry (the bot answers it without a restart)."""
    async with transaction(request.app[db_key]) as session:
        row = await faq_verbs.create_faq(session, data=_clean(body), actor=actor_of(user))
        result = FaqEntryRead.model_validate(row)
    await faq_changed(request)
    return result


@router.post("/admin/faqs/try", roles=SUPERVISOR, body=TryBody, response=TryResult)
async def try_faq(request: web.Request, user: User, body: TryBody) -> TryResult:
    """试一试: which FAQ the bot would answer for this question, with the scores."""
    parsed = await request.app[nlu_key].parse(body.text)
    catalog = request.app[engine_key].services.faq
    hits = [TryHit(faq_id=h.faq_id, question=h.question, score=round(float(h.score), 3)) for h in parsed.faq[:5]]
    best = parsed.faq[0] if parsed.faq else None
    if parsed.decision == "answer" and best is not None:
        answer, faq_id = catalog.answer(best.faq_id), best.faq_id
    elif parsed.decision == "clarify" and parsed.faq:
        answer = texts.CLARIFY + " " + " / ".join(h.question for h in parsed.faq[:3])
        faq_id = None
    else:
        answer, faq_id = texts.FALLBACK, None
    return TryResult(
        text=body.text,
        intent=parsed.intent,
        confidence=round(float(parsed.confidence), 3),
        decision=parsed.decision,
        answer=answer,
        faq_id=faq_id,
        hits=hits,
    )


def _similar(values: list[str]) -> list[str]:
    return list(dict.fromkeys(v.strip() for v in values if v and v.strip()))


def _clean(body: FaqEntryCreate) -> FaqEntryCreate:
    return body.model_copy(
        update={
            "question": body.question.strip(),
            "answer": body.answer.strip(),
            "category": body.category.strip(),
            "similar_questions": _similar(body.similar_questions),
        }
    )


FAQ_COLUMNS = ("id", "question", "similar_questions", "answer", "category", "enabled")


def _faq_rows(rows: list[FaqEntry]) -> list[list[Any]]:
    return [[r.id, r.question, "|".join(r.similar_questions), r.answer, r.category, "是" if r.enabled else "否"]
            for r in rows]  # fmt: skip


def _csv_bytes(rows: list[FaqEntry]) -> bytes:
    return spreadsheet.csv_text(FAQ_COLUMNS, _faq_rows(rows)).encode("utf-8")


def _xlsx_bytes(rows: list[FaqEntry]) -> bytes:
    return spreadsheet.xlsx_bytes("FAQ", FAQ_COLUMNS, _faq_rows(rows))


def _rasa_bytes(rows: list[FaqEntry]) -> bytes:
    from nlu import FaqDoc
    from nlu.data import TrainingData, to_rasa

    docs = [FaqDoc(id=r.id or 0, question=r.question, similar=tuple(r.similar_questions), answer=r.answer,
                   category=r.category) for r in rows if r.enabled]  # fmt: skip
    nlu_doc, domain = to_rasa(TrainingData(), docs)
    document = {**nlu_doc, "responses": domain["responses"]}
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False).encode()


@router.get("/admin/faqs/export", roles=SUPERVISOR, query=ExportQuery)
async def export_faqs(request: web.Request, user: User, query: ExportQuery) -> web.Response:
    """Download the FAQ as CSV, XLSX or Rasa YAML (retrieval intent `faq`)."""
    async with request.app[db_key]() as session:
        rows = await faq_verbs.list_faqs(session)
    build = {"csv": _csv_bytes, "xlsx": _xlsx_bytes, "rasa": _rasa_bytes}[query.format]
    body = await asyncio.to_thread(build, rows)
    kinds = {
        "csv": ("text/csv", "faq.csv"),
        "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "faq.xlsx"),
        "rasa": ("application/x-yaml", "faq-nlu.yml"),
    }
    content_type, filename = kinds[query.format]
    return web.Response(
        body=body, content_type=content_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


def _parse_table(rows: list[list[Any]]) -> tuple[list[FaqEntryCreate], list[str]]:
    if not rows:
        return [], ["文件为空"]
    header = [str(h or "").strip().lower() for h in rows[0]]
    if "question" not in header or "answer" not in header:
        return [], ["表头需要包含 question 和 answer 列"]
    index = {name: header.index(name) for name in FAQ_COLUMNS if name in header}
    entries: list[FaqEntryCreate] = []
    errors: list[str] = []

    def cell(row: list[Any], name: str) -> str:
        i = index.get(name)
        # an exported cell may carry the apostrophe that keeps it from being a formula: read the value back
        return "" if i is None or i >= len(row) or row[i] is None else spreadsheet.unescape_cell(str(row[i]).strip())

    for n, row in enumerate(rows[1 : MAX_IMPORT_ROWS + 1], start=2):
        if not any(str(c or "").strip() for c in row):
            continue
        try:
            entries.append(
                FaqEntryCreate.model_validate(
                    {
                        "question": cell(row, "question"),
                        "answer": cell(row, "answer"),
                        "category": cell(row, "category")[:32],
                        "similar_questions": _similar(cell(row, "similar_questions").split("|")),
                        "enabled": cell(row, "enabled").lower() not in ("否", "false", "0", "no"),
                    }
                )
            )
        except ValueError as exc:
            errors.append(f"第 {n} 行：{str(exc).splitlines()[0][:100]}")
    return entries, errors


def _parse_import(fmt: str, raw: bytes) -> tuple[list[FaqEntryCreate], list[str]]:
    if fmt == "csv":
        text = raw.decode("utf-8-sig", errors="replace")
        return _parse_table([list(r) for r in csv.reader(io.StringIO(text))])
    if fmt == "xlsx":
        from openpyxl import load_workbook

        try:
            sheet = load_workbook(io.BytesIO(raw), read_only=True, data_only=True).worksheets[0]
        except Exception:
            return [], ["不是有效的 XLSX 文件"]
        return _parse_table([list(r) for r in sheet.iter_rows(values_only=True)])
    from nlu.data import parse_rasa_nlu

    try:
        doc = yaml.safe_load(raw.decode("utf-8", errors="replace")) or {}
    except yaml.YAMLError:
        return [], ["不是有效的 YAML 文件"]
    if not isinstance(doc, dict):
        return [], ["不是 Rasa NLU 格式"]
    _plain, docs = parse_rasa_nlu(doc).split_faq()
    entries = []
    errors = []
    for d in docs[:MAX_IMPORT_ROWS]:
        if not d.answer:
            errors.append(f"{d.question}：缺少回答（responses 中的 utter_faq/…）")
            continue
        entries.append(
            FaqEntryCreate(question=d.question[:200], answer=d.answer[:4000], similar_questions=list(d.similar))
        )
    return entries, errors


@router.post("/admin/faqs/import", roles=SUPERVISOR, query=ExportQuery, response=ImportResult)
async def import_faqs(request: web.Request, user: User, query: ExportQuery) -> ImportResult:
    """Upload CSV, XLSX or Rasa YAML (request body = the file); entries are matched by question text."""
    raw = await request.read()
    entries, errors = await asyncio.to_thread(_parse_import, query.format, raw)
    if not entries:
        raise ValidationFailed("没有可导入的条目：" + "；".join(errors[:5]))
    created = updated = unchanged = 0
    async with transaction(request.app[db_key]) as session:
        for entry in entries:
            existing = (await session.exec(select(FaqEntry).where(FaqEntry.question == entry.question))).first()
            snapshot = existing.model_dump() if existing else None
            row, is_new = await faq_verbs.upsert_faq_by_question(session, data=entry, actor=actor_of(user))
            if is_new:
                created += 1
            elif snapshot != row.model_dump():
                updated += 1
            else:
                unchanged += 1
        summary = {"format": query.format, "created": created, "updated": updated, "errors": len(errors)}
        record_audit(session, actor=actor_of(user), action="faq.import", object_type="faq", after=summary)
    await faq_changed(request)
    return ImportResult(created=created, updated=updated, unchanged=unchanged, errors=errors[:50])


# Registered after /admin/faqs/export so that path is not taken for an id.
@router.get("/admin/faqs/{faq_id}", roles=SUPERVISOR, response=FaqEntryRead)
async def get_faq(request: web.Request, user: User) -> FaqEntryRead:
    """One FAQ entry."""
    async with request.app[db_key]() as session:
        return FaqEntryRead.model_validate(await faq_verbs.get_faq(session, path_id(request, "faq_id")))


@router.put("/admin/faqs/{faq_id}", roles=SUPERVISOR, body=FaqEntryUpdate, response=FaqEntryRead)
async def update_faq(request: web.Request, user: User, body: FaqEntryUpdate) -> FaqEntryRead:
    """Edit or disable an FAQ entry (takes effect in the running bot)."""
    if body.similar_questions is not None:
        body.similar_questions = _similar(body.similar_questions)
    faq_id = path_id(request, "faq_id")
    async with transaction(request.app[db_key]) as session:
        current = await faq_verbs.get_faq(session, faq_id)
        # Only what really changes is written (and audited): forms send every field; null means "unchanged".
        given = body.model_dump(exclude_unset=True, exclude_none=True)
        changed = {k: v for k, v in given.items() if getattr(current, k) != v}
        row = (
            await faq_verbs.update_faq(
                session, faq_id=faq_id, data=FaqEntryUpdate.model_validate(changed), actor=actor_of(user)
            )
            if changed
            else current
        )
        result = FaqEntryRead.model_validate(row)
    await faq_changed(request)
    return result


@router.delete("/admin/faqs/{faq_id}", roles=SUPERVISOR, status=204)
async def delete_faq(request: web.Request, user: User) -> None:
    """Delete an FAQ entry (disabling keeps its history; prefer that)."""
    async with transaction(request.app[db_key]) as session:
        await faq_verbs.delete_faq(session, faq_id=path_id(request, "faq_id"), actor=actor_of(user))
    await faq_changed(request)


# --- users -------------------------------------------------------------------------------


class UserAdminRead(UserRead):
    locked_until: datetime | None
    failed_logins: int
    created_at: datetime


@router.get("/admin/users", roles=ADMIN, response=list[UserAdminRead])
async def list_users(request: web.Request, user: User) -> list[UserAdminRead]:
    """Staff users and their roles."""
    async with request.app[db_key]() as session:
        rows = (await session.exec(select(User).order_by(col(User.id)))).all()
    return [UserAdminRead.model_validate(r) for r in rows]


@router.post("/admin/users", roles=ADMIN, body=UserCreate, response=UserAdminRead, status=201)
async def create_user(request: web.Request, user: User, body: UserCreate) -> UserAdminRead:
    """Create a staff user."""
    async with transaction(request.app[db_key]) as session:
        row = await user_verbs.create_user(session, data=body, actor=actor_of(user))
        return UserAdminRead.model_validate(row)


@router.put("/admin/users/{user_id}", roles=ADMIN, body=UserUpdate, response=UserAdminRead)
async def update_user(request: web.Request, user: User, body: UserUpdate) -> UserAdminRead:
    """Change role, password, cap or disable a user; their sessions end when access changes."""
    user_id = path_id(request, "user_id")
    if user_id == user.id and (body.active is False or (body.role is not None and body.role != user.role)):
        raise ValidationFailed("不能停用自己或修改自己的角色")
    async with transaction(request.app[db_key]) as session:
        row, end_sessions = await user_verbs.update_user(session, user_id=user_id, data=body, actor=actor_of(user))
        if end_sessions:
            from sqlmodel import delete

            await session.exec(delete(UserSession).where(col(UserSession.user_id) == user_id))  # type: ignore[call-overload]
        result = UserAdminRead.model_validate(row)
    if end_sessions:
        await announce_sessions_ended(request.app, user_id)
    return result


@router.post("/admin/users/{user_id}/unlock", roles=ADMIN, response=UserAdminRead)
async def unlock_user(request: web.Request, user: User) -> UserAdminRead:
    """Lift the login throttle of this user (their wrong passwords from every address are forgotten)."""
    user_id = path_id(request, "user_id")
    async with transaction(request.app[db_key]) as session:
        row = await session.get(User, user_id)
        if row is None:
            raise web.HTTPNotFound(text="用户不存在", reason="Not Found")
        before = {"locked_until": row.locked_until, "failed_logins": row.failed_logins}
        row.locked_until, row.failed_logins = None, 0
        record_audit(session, actor=actor_of(user), action="user.unlock", object_type="user", object_id=user_id,
                     before=before)  # fmt: skip
        result = UserAdminRead.model_validate(row)
    await lift_throttle(request.app, row.username)
    return result


# --- channels ----------------------------------------------------------------------------


class ChannelField(BaseModel):
    key: str
    label: str
    value: str
    secret: bool


class ChannelInfo(BaseModel):
    channel: str
    name: str
    configured: bool
    state: Literal["ready", "demo", "partial", "off"]  # what the channel can do right now
    state_label: str
    callback_url: str
    notes: list[str]
    fields: list[ChannelField]


def mask_secret(value: str) -> str:
    """Never show a credential back in full: the last 4 characters at most."""
    if not value:
        return ""
    if len(value) <= 8:
        return "*" * len(value)
    return "*" * (len(value) - 4) + value[-4:]


STATE_LABELS = {"ready": "已启用", "demo": "演示模式", "partial": "部分可用", "off": "未启用"}


def _secret(value: Any) -> str:
    return value.get_secret_value() if hasattr(value, "get_secret_value") else str(value or "")


def _oa_state(s: Any) -> tuple[str, list[str]]:
    from bot.channels.wechat_oa import DEMO_TOKEN, callback_token

    token = callback_token(s)
    can_call = bool(s.wechat_app_id and _secret(s.wechat_app_secret))
    if not token:
        return "off", ["未设置 Token：微信的回调会被拒绝"]
    if token == DEMO_TOKEN and not s.wechat_token:
        notes = [f"开发环境使用演示 Token（{DEMO_TOKEN}），可用 huike wechat simulate 模拟粉丝发消息"]
        if not can_call:
            notes.append("未配置 AppID/AppSecret：只能在 5 秒内被动回复；超时的回复、主动推送和关怀消息无法发出")
        return "demo", notes
    if not can_call:
        return "partial", ["能接收消息并被动回复；未配置 AppID/AppSecret，客服接口回复和关怀消息无法发出"]
    return "ready", []


def _wecom_state(s: Any, kf: bool) -> tuple[str, list[str]]:
    receives = bool(s.wecom_token and _secret(s.wecom_aes_key))
    can_call = bool(s.wecom_corp_id and _secret(s.wecom_secret))
    notes = [f"通过企业微信应用接入：收到微信客服事件后拉取消息；仅在客户最近 48 小时内发过消息时可回复，"
             f"每条客户消息最多回复 {s.wechat_kf_max_replies} 条"] if kf else []  # fmt: skip
    if not receives:
        return "off", [*notes, "未设置企业微信 Token 和 EncodingAESKey：回调会被拒绝"]
    if not can_call:
        return "partial", [*notes, "未配置 CorpID/Secret：" + ("无法拉取消息" if kf else "无法主动发送消息")]
    return "ready", notes


@router.get("/admin/channels", roles=ADMIN, response=list[ChannelInfo])
async def channels(request: web.Request, user: User) -> list[ChannelInfo]:
    """Channel settings (secrets masked) and what each channel can do with them right now."""
    s = request.app[settings_key]
    base = str(s.public_url).rstrip("/")

    def f(key: str, label: str, value: Any, secret: bool = False) -> ChannelField:
        raw = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value or "")
        return ChannelField(key=key, label=label, value=mask_secret(raw) if secret else raw, secret=secret)

    def info(channel: str, name: str, state: tuple[str, list[str]], url: str, fields: list[Any]) -> ChannelInfo:
        code, notes = state
        return ChannelInfo(channel=channel, name=name, configured=code == "ready", state=code,  # type: ignore[arg-type]
                           state_label=STATE_LABELS[code], callback_url=url, notes=notes, fields=fields)  # fmt: skip

    wecom_fields = [f("wecom_corp_id", "CorpID", s.wecom_corp_id), f("wecom_agent_id", "AgentID", s.wecom_agent_id),
                    f("wecom_secret", "Secret", s.wecom_secret, True), f("wecom_token", "Token", s.wecom_token, True),
                    f("wecom_aes_key", "EncodingAESKey", s.wecom_aes_key, True)]  # fmt: skip
    return [
        info("webchat", "网页客服", ("ready", [f"网站嵌入：<script src=\"{base}/static/webchat/embed.js\" async>"]),
             base + "/", [f("public_url", "访问地址", s.public_url)]),
        info("wechat_oa", "微信公众号", _oa_state(s), base + "/channels/wechat/default",
             [f("wechat_app_id", "AppID", s.wechat_app_id),
              f("wechat_app_secret", "AppSecret", s.wechat_app_secret, True),
              f("wechat_token", "Token", s.wechat_token, True),
              f("wechat_aes_key", "EncodingAESKey", s.wechat_aes_key, True)]),
        info("wecom", "企业微信", _wecom_state(s, kf=False), base + "/channels/wecom/default", wecom_fields),
        info("wechat_kf", "微信客服", _wecom_state(s, kf=True), base + "/channels/wecom/default", wecom_fields),
    ]  # fmt: skip


# --- audit log ---------------------------------------------------------------------------


class AuditQuery(BaseModel):
    action: str = Field(default="", max_length=64)
    actor: str = Field(default="", max_length=64)
    object_type: str = Field(default="", max_length=32)
    object_id: str = Field(default="", max_length=64)
    start: date | None = None  # Beijing dates, inclusive
    end: date | None = None
    before_id: int = Field(default=0, ge=0)
    limit: int = Field(default=100, ge=1, le=500)


@router.get("/admin/audit", roles=ADMIN, query=AuditQuery, response=list[AuditLogRead])
async def audit_log(request: web.Request, user: User, query: AuditQuery) -> list[AuditLogRead]:
    """Who did what, newest first (page with before_id)."""
    stmt = select(AuditLog).order_by(col(AuditLog.id).desc()).limit(query.limit)
    if query.action:
        stmt = stmt.where(col(AuditLog.action).startswith(query.action))
    if query.actor:
        stmt = stmt.where(AuditLog.actor == query.actor)
    if query.object_type:
        stmt = stmt.where(AuditLog.object_type == query.object_type)
    if query.object_id:
        stmt = stmt.where(AuditLog.object_id == query.object_id)
    if query.start:
        stmt = stmt.where(col(AuditLog.created_at) >= day_bounds(query.start, query.start)[0])
    if query.end:
        stmt = stmt.where(col(AuditLog.created_at) < day_bounds(query.end, query.end)[1])
    if query.before_id:
        stmt = stmt.where(col(AuditLog.id) < query.before_id)
    async with request.app[db_key]() as session:
        rows = (await session.exec(stmt)).all()
    return [AuditLogRead.model_validate(r) for r in rows]


# --- dashboard ---------------------------------------------------------------------------


class DashboardQuery(BaseModel):
    start: Day | None = None
    end: Day | None = None


class Point(BaseModel):
    day: date
    channel: str
    conversations: int
    messages: int


class Bucket(BaseModel):
    label: str
    count: int


class Dashboard(BaseModel):
    start: date
    end: date
    series: list[Point]
    conversations: int
    messages_in: int
    messages_out: int
    bot_resolution_rate: float | None
    handoff_rate: float | None
    first_response_seconds: float | None
    resolution_seconds: float | None
    ticket_resolution_seconds: float | None
    csat: float | None
    csat_count: int
    nps: float | None
    nps_count: int
    complaints_by_category: list[Bucket]
    customers_by_lifecycle: list[Bucket]
    customers_by_value_tier: list[Bucket]


@router.get("/admin/dashboard", roles=SUPERVISOR, query=DashboardQuery, response=Dashboard)
async def dashboard(request: web.Request, user: User, query: DashboardQuery) -> Dashboard:
    """Figures for a date range (default: the last 7 days), read from our own tables."""
    end = query.end or local_today(utcnow())
    start = query.start or end - timedelta(days=6)
    if start > end:
        raise ValidationFailed("开始日期不能晚于结束日期")
    if (end - start).days > 366:
        raise ValidationFailed("日期范围最长一年")
    # Days are China days (a brand's "today"), compared against stored UTC times.
    since, until = day_bounds(start, end)
    async with request.app[db_key]() as session:
        figures = await _figures(session, since, until)
    return Dashboard(start=start, end=end, **figures)


def _local_day(session: AsyncSession, column: Any) -> Any:
    """The calendar day in China (UTC+8, no daylight saving) of a stored UTC time, in SQL."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        return sa.func.date(sa.func.timezone(BUSINESS_TZ.key, column))
    return sa.func.date(column, "+8 hours")


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


async def _figures(session: AsyncSession, since: datetime, until: datetime) -> dict[str, Any]:
    """Aggregated in SQL (messages can be many); only per-conversation rows come back to Python."""
    conv_in_range = (col(Conversation.created_at) >= since, col(Conversation.created_at) < until)
    msg_in_range = (
        col(Message.created_at) >= since,
        col(Message.created_at) < until,
        col(Message.sender) != Sender.NOTE,
    )
    series: dict[tuple[date, str], list[int]] = {}
    conv_day = _local_day(session, col(Conversation.created_at))
    for day, channel, n in (
        await session.execute(
            sa.select(conv_day, col(Conversation.channel), sa.func.count())
            .where(*conv_in_range)
            .group_by(conv_day, col(Conversation.channel))
        )
    ).all():
        series.setdefault((_as_date(day), channel), [0, 0])[0] += int(n)
    msg_day = _local_day(session, col(Message.created_at))
    inbound = col(Message.direction) == Direction.IN
    for day, channel, n in (
        await session.execute(
            sa.select(msg_day, col(Message.channel), sa.func.count())
            .where(*msg_in_range, inbound)
            .group_by(msg_day, col(Message.channel))
        )
    ).all():
        series.setdefault((_as_date(day), channel), [0, 0])[1] += int(n)
    counts = _pairs(
        (
            await session.execute(
                sa.select(col(Message.direction), sa.func.count()).where(*msg_in_range).group_by(col(Message.direction))
            )
        ).all()
    )
    conversations = (
        await session.execute(
            sa.select(col(Conversation.id), col(Conversation.queue_reason), col(Conversation.agent_id),
                      col(Conversation.created_at), col(Conversation.closed_at), col(Conversation.queued_at))
            .where(*conv_in_range)
        )
    ).all()  # fmt: skip
    senders: dict[int, set[str]] = {}
    for conversation_id, sender in (
        await session.execute(
            sa.select(col(Message.conversation_id), col(Message.sender)).where(*msg_in_range).distinct()
        )
    ).all():
        senders.setdefault(conversation_id, set()).add(sender)
    # First response: the first agent reply at or after the customer entered the queue (the bot's instant
    # replies and a conversation no agent answered do not count).
    first_agent = _pairs(
        (await session.execute(
            sa.select(col(Message.conversation_id), sa.func.min(col(Message.created_at)))
            .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
            .where(*conv_in_range, col(Message.sender) == Sender.AGENT, col(Conversation.queued_at).is_not(None),
                   col(Message.created_at) >= col(Conversation.queued_at))
            .group_by(col(Message.conversation_id))
        )).all()
    )  # fmt: skip
    total = len(conversations)
    handed = {c.id for c in conversations if c.queue_reason or c.agent_id or Sender.AGENT in senders.get(c.id, set())}
    bot_only = [c for c in conversations if c.id not in handed and Sender.BOT in senders.get(c.id, set())]
    waits = [(_utc(first_agent[c.id]) - _utc(c.queued_at)).total_seconds() for c in conversations
             if c.id in first_agent]  # fmt: skip
    closes = [(_utc(c.closed_at) - _utc(c.created_at)).total_seconds() for c in conversations if c.closed_at]
    figures: dict[str, Any] = {
        "series": [
            Point(day=d, channel=ch, conversations=v[0], messages=v[1]) for (d, ch), v in sorted(series.items())
        ],
        "conversations": total,
        "messages_in": int(counts.get(Direction.IN, 0)),
        "messages_out": int(counts.get(Direction.OUT, 0)),
        "bot_resolution_rate": round(len(bot_only) / total, 3) if total else None,
        "handoff_rate": round(len(handed) / total, 3) if total else None,
        "first_response_seconds": round(sum(waits) / len(waits), 1) if waits else None,
        "resolution_seconds": round(sum(closes) / len(closes), 1) if closes else None,
    }
    figures.update(await _tickets_and_surveys(session, since, until))
    figures.update(await _customers(session))
    return figures


def _pairs(rows: Any) -> dict[Any, Any]:
    return {row[0]: row[1] for row in rows}


def _utc(value: Any) -> datetime:
    """min() over a timestamp comes back as a string on SQLite."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return aware(moment)


async def _tickets_and_surveys(session: AsyncSession, since: datetime, until: datetime) -> dict[str, Any]:
    """Complaints and CSAT/NPS; empty when those tables are not there yet."""
    from models.ticket import SurveyResponse, Ticket

    out: dict[str, Any] = {"complaints_by_category": [], "ticket_resolution_seconds": None,
                           "csat": None, "csat_count": 0, "nps": None, "nps_count": 0}  # fmt: skip
    try:
        async with session.begin_nested():
            rows = (
                await session.exec(
                    select(Ticket.category, func.count())
                    .where(col(Ticket.created_at) >= since, col(Ticket.created_at) < until)
                    .group_by(col(Ticket.category))
                )
            ).all()
            out["complaints_by_category"] = sorted((Bucket(label=c, count=n) for c, n in rows), key=lambda b: -b.count)
            resolved = (
                await session.exec(
                    select(Ticket.created_at, Ticket.resolved_at).where(
                        col(Ticket.resolved_at).is_not(None),
                        col(Ticket.created_at) >= since,
                        col(Ticket.created_at) < until,
                    )
                )
            ).all()
            surveys = (
                await session.exec(
                    select(SurveyResponse.kind, SurveyResponse.score).where(
                        col(SurveyResponse.created_at) >= since,
                        col(SurveyResponse.created_at) < until,
                        col(SurveyResponse.score).is_not(None),
                    )
                )
            ).all()
    except Exception as exc:  # a table not migrated yet: the dashboard shows the rest
        log.warning("dashboard_tickets_unavailable", error=str(exc)[:200])
        return out
    if resolved:
        spans = [(aware(r) - aware(c)).total_seconds() for c, r in resolved if r is not None]
        out["ticket_resolution_seconds"] = round(sum(spans) / len(spans), 1) if spans else None
    csat = [s for k, s in surveys if k == "csat" and s is not None]
    nps = [s for k, s in surveys if k == "nps" and s is not None]
    if csat:
        out["csat"], out["csat_count"] = round(sum(csat) / len(csat), 2), len(csat)
    if nps:
        promoters = sum(1 for s in nps if s >= 9)
        detractors = sum(1 for s in nps if s <= 6)
        out["nps"], out["nps_count"] = round(100 * (promoters - detractors) / len(nps), 1), len(nps)
    return out


async def _customers(session: AsyncSession) -> dict[str, Any]:
    out: dict[str, Any] = {"customers_by_lifecycle": [], "customers_by_value_tier": []}
    live = col(Customer.merged_into_id).is_(None)
    rows = (
        await session.exec(
            select(Customer.lifecycle_stage, func.count()).where(live).group_by(col(Customer.lifecycle_stage))
        )
    ).all()
    out["customers_by_lifecycle"] = [Bucket(label=s or "未知", count=n) for s, n in rows]
    try:
        from models.scrm import CustomerValue

        async with session.begin_nested():
            tiers = (
                await session.exec(select(CustomerValue.tier, func.count()).group_by(col(CustomerValue.tier)))
            ).all()
        out["customers_by_value_tier"] = [Bucket(label=t, count=n) for t, n in tiers]
    except Exception as exc:
        log.warning("dashboard_value_unavailable", error=str(exc)[:200])
    return out


def setup(app: web.Application) -> None:
    router.install(app)
