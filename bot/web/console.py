"""Agent console API: live queue, presence, take over, reply, transfer, hand back, close, notes,
canned responses, customer side panel and NLU suggestions; plus the console WebSocket.

Every change is committed first, then announced on the event bus ("message",
"conversation.updated", "presence"), so an agent connected to any worker sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime
from typing import Any

import orjson
import structlog
from aiohttp import WSMsgType, web
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import attachments
from bot.channels.webchat import image_response
from bot.engine.engine import message_event
from bot.faq_sync import FAQ_CHANGED
from bot.keys import bus_key, db_key, nlu_key, outbox_key, settings_key
from bot.web.api import INT32_MAX, STAFF, SUPERVISOR, ApiRouter, path_id
from bot.web.auth import SESSIONS_ENDED, current_session, sees_personal, viewer
from models import (
    CannedResponse,
    CannedResponseCreate,
    CannedResponseRead,
    Conversation,
    ConversationState,
    Customer,
    CustomerTag,
    Direction,
    FaqEntry,
    Message,
    Presence,
    Role,
    Tag,
    User,
    aware,
    utcnow,
)
from models.ticket import OPEN_STATUSES, Ticket
from scrm import conversations as conv
from scrm import presence as presence_verbs
from scrm import tickets as ticket_verbs
from scrm.audit import record_audit
from scrm.db import transaction
from scrm.errors import Conflict, DomainError, NotFound
from scrm.privacy import Viewer

log = structlog.get_logger(__name__)
router = ApiRouter("console")

REASONS = {
    "human": "客户要求转人工",
    "fallback": "多次未能理解",
    "complaint": "投诉升级",
    "vip": "VIP 客户",
    "sentiment": "客户情绪激动",
}
PRIORITY = {"vip": 0, "complaint": 1, "sentiment": 2}
CONSOLE_TOPICS = ("message", "conversation.queued", "conversation.updated", "presence", "ticket.escalated")


# --- schemas -----------------------------------------------------------------------------


class QueueItem(BaseModel):
    conversation_id: int
    customer_id: int
    customer_name: str
    channel: str
    state: str
    reason: str | None
    reason_label: str
    queued_at: datetime | None
    waiting_seconds: int
    agent_id: int | None
    last_text: str
    last_message_at: datetime | None


class Queue(BaseModel):
    waiting: list[QueueItem]
    mine: list[QueueItem]
    others: list[QueueItem]


class ConsoleMessage(BaseModel):
    id: int
    direction: str
    sender: str
    agent_id: int | None
    text: str
    created_at: datetime
    image: str | None = None  # a photo the customer sent: GET /api/v1/console/images/{image}


class TagInfo(BaseModel):
    name: str
    source: str


class CustomerPanel(BaseModel):
    id: int
    name: str
    phone: str
    masked: bool
    lifecycle_stage: str
    member_level: str | None
    points: int
    created_at: datetime
    last_active_at: datetime | None
    tags: list[TagInfo]


class TimelineItem(BaseModel):
    kind: str  # conversation | ticket
    id: int
    title: str
    status: str
    created_at: datetime


class ConversationDetail(BaseModel):
    conversation: QueueItem
    messages: list[ConsoleMessage]
    customer: CustomerPanel
    timeline: list[TimelineItem]


class AgentInfo(BaseModel):
    """What an agent needs to pick a colleague for a transfer: no login names, and roles only for leads (who
    assign tickets by them)."""

    id: int
    display_name: str
    presence: str
    active_count: int
    max_concurrent: int
    role: Role | None = None


class PresenceBody(BaseModel):
    presence: Presence


class TextBody(BaseModel):
    text: str = Field(min_length=1, max_length=2000)


class TransferBody(BaseModel):
    agent_id: int


class ConfirmFaqBody(BaseModel):
    message_id: int
    faq_id: int


class Suggestion(BaseModel):
    faq_id: int
    question: str
    answer: str
    score: float


class Suggestions(BaseModel):
    text: str
    message_id: int | None
    suggestions: list[Suggestion]


class CannedUpdate(BaseModel):
    shortcut: str | None = Field(default=None, min_length=1, max_length=32, pattern=r"^[\w\-]+$")
    title: str | None = Field(default=None, min_length=1, max_length=64)
    text: str | None = Field(default=None, min_length=1, max_length=2000)


class Posted(BaseModel):
    message: ConsoleMessage


# --- helpers -----------------------------------------------------------------------------


def display_name(customer: Customer | None, user: User, customer_id: int) -> str:
    if customer is None or not customer.name:
        return f"访客 {customer_id}"
    return viewer(user).name(customer.name)


async def _name_of(session: AsyncSession, customer_id: int | None) -> str | None:
    customer = await session.get(Customer, customer_id) if customer_id else None
    return customer.name if customer else None


async def _last_texts(session: AsyncSession, ids: list[int]) -> dict[int, str]:
    if not ids:
        return {}
    latest = (
        select(Message.conversation_id, func.max(Message.id).label("mid"))
        .where(col(Message.conversation_id).in_(ids), Message.direction == Direction.IN)
        .group_by(col(Message.conversation_id))
        .subquery()
    )
    rows = (
        await session.exec(select(Message.conversation_id, Message.text).join(latest, col(Message.id) == latest.c.mid))
    ).all()
    return {cid: text for cid, text in rows}


def _item(conversation: Conversation, customer: Customer | None, user: User, last_text: str) -> QueueItem:
    assert conversation.id is not None
    queued_at = aware(conversation.queued_at) if conversation.queued_at else None
    waiting = int((utcnow() - queued_at).total_seconds()) if queued_at and conversation.state == "queued" else 0
    reason = conversation.queue_reason
    return QueueItem(
        conversation_id=conversation.id,
        customer_id=conversation.customer_id,
        customer_name=display_name(customer, user, conversation.customer_id),
        channel=conversation.channel,
        state=conversation.state,
        reason=reason,
        reason_label=REASONS.get(reason or "", reason or ""),
        queued_at=queued_at,
        waiting_seconds=max(waiting, 0),
        agent_id=conversation.agent_id,
        last_text=viewer(user, customer.name if customer else None).text(last_text[:200]),
        last_message_at=conversation.last_message_at,
    )


async def _items(session: AsyncSession, conversations: list[Conversation], user: User) -> list[QueueItem]:
    customers = (
        {
            c.id: c
            for c in (
                await session.exec(select(Customer).where(col(Customer.id).in_({c.customer_id for c in conversations})))
            ).all()
        }
        if conversations
        else {}
    )
    texts = await _last_texts(session, [c.id for c in conversations if c.id is not None])
    return [_item(c, customers.get(c.customer_id), user, texts.get(c.id or 0, "")) for c in conversations]


def _console_message(m: Message, shown: Viewer | None = None) -> ConsoleMessage:
    """A message as the console shows it; `shown` None: the sender's own text, back to them."""
    assert m.id is not None
    text = shown.text(m.text) if shown is not None else m.text
    return ConsoleMessage(id=m.id, direction=m.direction, sender=m.sender, agent_id=m.agent_id, text=text,
                          created_at=m.created_at, image=(m.payload.get("image") or {}).get("name"))  # fmt: skip


async def _announce(request: web.Request, conversation: Conversation | None, *messages: Message | None) -> None:
    """After commit: tell every console (any worker) and the customer's widget; wake the outbox."""
    bus = request.app[bus_key]
    for message in messages:
        if message is not None:
            await bus.publish("message", message_event(message))
    if conversation is not None:
        await bus.publish(
            "conversation.updated",
            {"conversation_id": conversation.id, "state": conversation.state, "agent_id": conversation.agent_id},
        )
    request.app[outbox_key].poke()


# --- queue and presence ------------------------------------------------------------------


@router.get("/console/queue", roles=STAFF, response=Queue)
async def queue(request: web.Request, user: User) -> Queue:
    """Conversations waiting for an agent (oldest first), mine, and those other agents serve."""
    async with request.app[db_key]() as session:
        rows = list(
            (
                await session.exec(
                    select(Conversation)
                    .where(col(Conversation.state).in_((ConversationState.QUEUED, ConversationState.AGENT)))
                    .order_by(col(Conversation.queued_at).asc().nulls_last(), col(Conversation.id))
                    .limit(500)
                )
            ).all()
        )
        items = await _items(session, rows, user)
    waiting = sorted(  # VIPs and complaint escalations first, then the longest waiting
        (i for i in items if i.state == ConversationState.QUEUED), key=lambda i: PRIORITY.get(i.reason or "", 9)
    )
    return Queue(
        waiting=waiting,
        mine=[i for i in items if i.state == ConversationState.AGENT and i.agent_id == user.id],
        others=[i for i in items if i.state == ConversationState.AGENT and i.agent_id != user.id],
    )


def shown_name(user: User) -> str:
    return user.display_name or f"客服 {user.id}"  # never the login name


@router.get("/console/agents", roles=STAFF, response=list[AgentInfo])
async def agents(request: web.Request, user: User) -> list[AgentInfo]:
    """Active staff with presence and current load (for transfers)."""
    async with request.app[db_key]() as session:
        users = (await session.exec(select(User).where(User.active == True).order_by(col(User.id)))).all()  # noqa: E712
        loads = dict(
            (
                await session.exec(
                    select(Conversation.agent_id, func.count())
                    .where(Conversation.state == ConversationState.AGENT)
                    .group_by(col(Conversation.agent_id))
                )
            ).all()
        )
    lead = user.role in (Role.SUPERVISOR, Role.ADMIN)
    return [
        AgentInfo(id=u.id or 0, display_name=shown_name(u), presence=u.presence,
                  active_count=int(loads.get(u.id, 0)), max_concurrent=u.max_concurrent, role=u.role if lead else None)
        for u in users
    ]  # fmt: skip


class EscalatedTicket(BaseModel):
    id: int
    number: str
    severity: str
    status: str
    escalated_at: datetime | None
    mine: bool


class Escalations(BaseModel):
    shared: int  # landed on nobody: every supervisor and admin sees them
    mine: int
    tickets: list[EscalatedTicket]


@router.get("/console/escalations", roles=SUPERVISOR, response=Escalations)
async def escalations(request: web.Request, user: User) -> Escalations:
    """Open escalated tickets for the console's badge: the shared queue and those escalated to me."""
    async with request.app[db_key]() as session:
        shared = await ticket_verbs.escalation_queue(session)
        mine = (
            await session.exec(
                select(Ticket).where(
                    Ticket.escalated_to_id == user.id, col(Ticket.status).in_(list(OPEN_STATUSES))
                )
            )
        ).all()
    rows = [(t, False) for t in shared] + [(t, True) for t in mine]
    return Escalations(
        shared=len(shared),
        mine=len(mine),
        tickets=[
            EscalatedTicket(id=t.id or 0, number=t.number or "", severity=str(t.severity), status=str(t.status),
                            escalated_at=t.escalated_at, mine=m)
            for t, m in rows
        ],
    )  # fmt: skip


@router.put("/console/presence", roles=STAFF, body=PresenceBody, response=AgentInfo)
async def set_presence(request: web.Request, user: User, body: PresenceBody) -> AgentInfo:
    """Online / busy / away."""
    async with transaction(request.app[db_key]) as session:
        row = await session.get_one(User, user.id)
        row.presence = body.presence
        row.last_seen_at = utcnow()  # set from the console page: it is there
        count = await conv.active_count(session, user.id or 0)
    await request.app[bus_key].publish("presence", {"user_id": user.id, "presence": body.presence})
    return AgentInfo(
        id=user.id or 0,
        display_name=shown_name(user),
        presence=body.presence,
        active_count=count,
        max_concurrent=user.max_concurrent,
    )


# --- one conversation --------------------------------------------------------------------


@router.get("/console/conversations/{conversation_id}", roles=STAFF, response=ConversationDetail)
async def conversation_detail(request: web.Request, user: User) -> ConversationDetail:
    """Messages (with internal notes), the customer's profile, tags and timeline."""
    conversation_id = path_id(request, "conversation_id")
    async with request.app[db_key]() as session:
        conversation = await conv.get_conversation(session, conversation_id)
        customer = await session.get(Customer, conversation.customer_id)
        if customer is None:
            raise NotFound("客户不存在")
        messages = (
            await session.exec(
                select(Message).where(Message.conversation_id == conversation_id).order_by(col(Message.id)).limit(500)
            )
        ).all()
        [item] = await _items(session, [conversation], user)
        tags = (
            await session.exec(
                select(Tag.name, CustomerTag.source)
                .join(CustomerTag, col(CustomerTag.tag_id) == Tag.id)
                .where(CustomerTag.customer_id == customer.id)
            )
        ).all()
        timeline = await _timeline(session, customer.id or 0)
    shown = viewer(user, customer.name)
    panel = CustomerPanel(
        id=customer.id or 0,
        name=display_name(customer, user, customer.id or 0),
        phone=shown.phone(customer.phone),
        masked=not shown.full,
        lifecycle_stage=customer.lifecycle_stage,
        member_level=customer.member_level,
        points=customer.points,
        created_at=customer.created_at,
        last_active_at=customer.last_active_at,
        tags=[TagInfo(name=n, source=s) for n, s in tags],
    )
    return ConversationDetail(
        conversation=item, messages=[_console_message(m, shown) for m in messages], customer=panel, timeline=timeline
    )


async def _timeline(session: AsyncSession, customer_id: int) -> list[TimelineItem]:
    items: list[TimelineItem] = []
    conversations = (
        await session.exec(
            select(Conversation)
            .where(Conversation.customer_id == customer_id)
            .order_by(col(Conversation.id).desc())
            .limit(20)
        )
    ).all()
    for c in conversations:
        items.append(TimelineItem(kind="conversation", id=c.id or 0, title=f"{c.channel} 会话", status=c.state,
                                  created_at=c.created_at))  # fmt: skip
    tickets = (
        await session.exec(
            select(Ticket).where(Ticket.customer_id == customer_id).order_by(col(Ticket.id).desc()).limit(20)
        )
    ).all()
    for t in tickets:
        title = f"工单 {t.number or t.id} · {t.category}"
        items.append(TimelineItem(kind="ticket", id=t.id or 0, title=title, status=t.status, created_at=t.created_at))
    items.sort(key=lambda i: aware(i.created_at), reverse=True)
    return items


@router.post("/console/conversations/{conversation_id}/take", roles=STAFF, response=QueueItem)
async def take(request: web.Request, user: User) -> QueueItem:
    """Take over a waiting conversation; 409 when another agent was faster or the cap is reached."""
    conversation_id = path_id(request, "conversation_id")
    async with transaction(request.app[db_key]) as session:
        agent = await session.get_one(User, user.id)
        conversation, joined = await conv.take_over(session, conversation_id=conversation_id, agent=agent)
        [item] = await _items(session, [conversation], user)
    await _announce(request, conversation, joined)
    return item


@router.post("/console/conversations/{conversation_id}/messages", roles=STAFF, body=TextBody, response=Posted,
             status=201)  # fmt: skip
async def reply(request: web.Request, user: User, body: TextBody) -> Posted:
    """Reply to the customer on their channel (the conversation must be yours)."""
    return Posted(message=await _reply(request, user, path_id(request, "conversation_id"), body.text))


async def _reply(request: web.Request, user: User, conversation_id: int, text: str) -> ConsoleMessage:
    async with transaction(request.app[db_key]) as session:
        message, _outbox = await conv.agent_reply(session, conversation_id=conversation_id, agent=user, text=text)
    await _announce(request, None, message)
    return _console_message(message)


@router.post("/console/conversations/{conversation_id}/notes", roles=STAFF, body=TextBody, response=Posted,
             status=201)  # fmt: skip
async def note(request: web.Request, user: User, body: TextBody) -> Posted:
    """An internal note beside the conversation (never sent to the customer)."""
    conversation_id = path_id(request, "conversation_id")
    async with transaction(request.app[db_key]) as session:
        row = await conv.add_note(session, conversation_id=conversation_id, agent=user, text=body.text)
    await request.app[bus_key].publish("message", message_event(row))
    return Posted(message=_console_message(row))


@router.post("/console/conversations/{conversation_id}/transfer", roles=STAFF, body=TransferBody, response=QueueItem)
async def transfer(request: web.Request, user: User, body: TransferBody) -> QueueItem:
    """Transfer to another agent who is online and below their cap."""
    conversation_id = path_id(request, "conversation_id")
    async with transaction(request.app[db_key]) as session:
        target = await session.get(User, body.agent_id)
        if target is None:
            raise NotFound("客服不存在")
        grace = request.app[settings_key].presence_grace
        if not await presence_verbs.is_present(session, target.id or 0, now=utcnow(), grace=grace):
            raise Conflict(f"{shown_name(target)} 当前不在线")
        conversation, told = await conv.transfer(
            session, conversation_id=conversation_id, by=user, to_agent_id=body.agent_id
        )
        [item] = await _items(session, [conversation], user)
    await _announce(request, conversation, told)
    return item


@router.post("/console/conversations/{conversation_id}/hand-back", roles=STAFF, response=QueueItem)
async def hand_back(request: web.Request, user: User) -> QueueItem:
    """Hand the conversation back to the bot."""
    async with transaction(request.app[db_key]) as session:
        conversation, told = await conv.hand_back(session, conversation_id=path_id(request, "conversation_id"), by=user)
        [item] = await _items(session, [conversation], user)
    await _announce(request, conversation, told)
    return item


@router.post("/console/conversations/{conversation_id}/close", roles=STAFF, response=QueueItem)
async def close(request: web.Request, user: User) -> QueueItem:
    """Close the conversation (the customer's next message starts a new one)."""
    conversation_id = path_id(request, "conversation_id")
    async with transaction(request.app[db_key]) as session:
        conversation, told = await conv.close_conversation(session, conversation_id=conversation_id, by=user)
        [item] = await _items(session, [conversation], user)
    await _announce(request, conversation, told)
    return item


@router.get("/console/conversations/{conversation_id}/suggestions", roles=STAFF, response=Suggestions)
async def suggestions(request: web.Request, user: User) -> Suggestions:
    """FAQ answers the NLU suggests for the customer's latest message."""
    conversation_id = path_id(request, "conversation_id")
    async with request.app[db_key]() as session:
        last = (
            await session.exec(
                select(Message)
                .where(
                    Message.conversation_id == conversation_id, Message.direction == Direction.IN, Message.text != ""
                )
                .order_by(col(Message.id).desc())
            )
        ).first()
        if last is None:
            return Suggestions(text="", message_id=None, suggestions=[])
        shown = viewer(user, await _name_of(session, last.customer_id))
        hits = request.app[nlu_key].suggest(last.text, 3)
        answers = {
            f.id: f
            for f in (await session.exec(select(FaqEntry).where(col(FaqEntry.id).in_([h.faq_id for h in hits])))).all()
        }
    found = [
        Suggestion(faq_id=h.faq_id, question=answers[h.faq_id].question, answer=answers[h.faq_id].answer,
                   score=round(float(h.score), 3))
        for h in hits if h.faq_id in answers
    ]  # fmt: skip
    return Suggestions(text=shown.text(last.text), message_id=last.id, suggestions=found)


@router.post("/console/conversations/{conversation_id}/confirm-faq", roles=STAFF, body=ConfirmFaqBody, status=201)
async def confirm_faq(request: web.Request, user: User, body: ConfirmFaqBody) -> dict[str, Any]:
    """Label a customer question with the FAQ that answers it (training data for the NLU)."""
    async with transaction(request.app[db_key]) as session:
        row = await conv.confirm_faq(
            session,
            conversation_id=path_id(request, "conversation_id"),
            message_id=body.message_id,
            faq_id=body.faq_id,
            agent=user,
        )
        message = await session.get(Message, body.message_id)
        shown = viewer(user, await _name_of(session, message.customer_id) if message else None)
    await request.app[bus_key].publish(FAQ_CHANGED, {"confirmed": row.id})  # every worker retrains with the pair
    return {"id": row.id, "faq_id": row.faq_id, "text": shown.text(row.text)}


@router.get("/console/images/{name}", roles=STAFF)
async def image(request: web.Request, user: User) -> web.StreamResponse:
    """A photo a customer sent (web-chat upload)."""
    found = attachments.locate(request.app[settings_key].data_dir, request.match_info["name"])
    if found is None:
        raise NotFound("图片不存在")
    return image_response(*found)


# --- canned responses ---------------------------------------------------------------------


@router.get("/console/canned", roles=STAFF, response=list[CannedResponseRead])
async def list_canned(request: web.Request, user: User) -> list[CannedResponseRead]:
    """Canned responses; type /shortcut in the reply box."""
    async with request.app[db_key]() as session:
        rows = (await session.exec(select(CannedResponse).order_by(col(CannedResponse.shortcut)))).all()
    return [CannedResponseRead.model_validate(r) for r in rows]


@router.post("/console/canned", roles=SUPERVISOR, body=CannedResponseCreate, response=CannedResponseRead, status=201)
async def create_canned(request: web.Request, user: User, body: CannedResponseCreate) -> CannedResponseRead:
    """Add a canned response."""
    async with transaction(request.app[db_key]) as session:
        if (await session.exec(select(CannedResponse).where(CannedResponse.shortcut == body.shortcut))).first():
            raise Conflict(f"快捷短语 /{body.shortcut} 已存在")
        row = CannedResponse.model_validate(body, update={"created_by_id": user.id})
        session.add(row)
        await session.flush()
        record_audit(session, actor=conv.actor_of(user), action="canned.create", object_type="canned",
                     object_id=row.id, after=body.model_dump())  # fmt: skip
    return CannedResponseRead.model_validate(row)


@router.put("/console/canned/{canned_id}", roles=SUPERVISOR, body=CannedUpdate, response=CannedResponseRead)
async def update_canned(request: web.Request, user: User, body: CannedUpdate) -> CannedResponseRead:
    """Edit a canned response."""
    async with transaction(request.app[db_key]) as session:
        row = await session.get(CannedResponse, path_id(request, "canned_id"))
        if row is None:
            raise NotFound("快捷回复不存在")
        changes = body.model_dump(exclude_unset=True, exclude_none=True)
        before = {k: getattr(row, k) for k in changes}
        for key, value in changes.items():
            setattr(row, key, value)
        row.updated_at = utcnow()
        record_audit(session, actor=conv.actor_of(user), action="canned.update", object_type="canned",
                     object_id=row.id, before=before, after=changes)  # fmt: skip
    return CannedResponseRead.model_validate(row)


@router.delete("/console/canned/{canned_id}", roles=SUPERVISOR, status=204)
async def delete_canned(request: web.Request, user: User) -> None:
    """Delete a canned response."""
    async with transaction(request.app[db_key]) as session:
        row = await session.get(CannedResponse, path_id(request, "canned_id"))
        if row is None:
            raise NotFound("快捷回复不存在")
        record_audit(session, actor=conv.actor_of(user), action="canned.delete", object_type="canned",
                     object_id=row.id, before=row.model_dump(include={"shortcut", "title", "text"}))  # fmt: skip
        await session.delete(row)


# --- WebSocket ---------------------------------------------------------------------------


async def console_ws(request: web.Request) -> web.StreamResponse:
    """Live console: pushes bus events; accepts {"type": "reply"|"typing"|"ping"} frames (a ping is the
    presence heartbeat).

    Authenticated by the session cookie; the Origin must be this site (no cross-site WebSocket).
    """
    found = await current_session(request)
    if found is None:
        raise web.HTTPUnauthorized(text="请先登录", reason="Unauthorized")
    user, _row = found
    if user.role not in STAFF:
        raise web.HTTPForbidden(text="没有权限", reason="Forbidden")
    origin = request.headers.get("Origin")
    if origin and origin.split("://", 1)[-1] != request.host:
        raise web.HTTPForbidden(text="来源不被允许", reason="Bad Origin")
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=16 * 1024)
    await ws.prepare(request)
    grace = request.app[settings_key].presence_grace
    await _beat(request, user)
    async with request.app[bus_key].subscribe() as queue:
        pusher = asyncio.create_task(_push_events(request.app, ws, queue, user, _row.id), name=f"console-ws-{user.id}")
        try:
            async with request.app[db_key]() as session:
                now_presence = (await session.get_one(User, user.id)).presence
            # The page beats every third of the grace period: a console gone that long sets its person offline.
            await ws.send_json({"type": "hello", "user_id": user.id, "presence": now_presence,
                                "heartbeat_seconds": max(2.0, grace.total_seconds() / 3)})
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    await _on_frame(request, ws, user, frame.data)
        finally:
            pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pusher
    return ws


NAME_TTL = 60.0  # seconds a console connection trusts a customer name it looked up (a rename shows within a minute)


async def _push_events(
    app: web.Application,
    ws: web.WebSocketResponse,
    queue: asyncio.Queue[tuple[str, dict[str, Any]]],
    user: User,
    session_id: str,
) -> None:
    names: dict[int, tuple[str | None, float]] = {}  # customer id -> (name, looked up at)

    async def shown_to_user(customer_id: Any) -> Viewer:
        if sees_personal(user) or not isinstance(customer_id, int):
            return viewer(user)
        name, at = names.get(customer_id, (None, -NAME_TTL))
        if time.monotonic() - at >= NAME_TTL:
            async with app[db_key]() as session:
                name = await _name_of(session, customer_id)
            if len(names) > 1000:
                names.clear()
            names[customer_id] = (name, time.monotonic())
        return viewer(user, name)

    while not ws.closed:
        topic, data = await queue.get()
        if topic == SESSIONS_ENDED and data.get("user_id") == user.id and data.get("session_id") in (None, session_id):
            await ws.close(code=4401, message=b"signed out")  # logout (everywhere), disabled or demoted
            return
        if topic == "message" and "text" in data:
            data = {**data, "text": (await shown_to_user(data.get("customer_id"))).text(str(data["text"]))}
        if topic in CONSOLE_TOPICS:
            await ws.send_str(orjson.dumps({"type": "event", "topic": topic, "data": data}, default=str).decode())


class ReplyFrame(BaseModel):
    type: str = Field(max_length=16)
    conversation_id: int = Field(default=0, ge=0, le=INT32_MAX)  # an INTEGER column on PostgreSQL
    text: str = Field(default="", max_length=2000)
    ref: str = Field(default="", max_length=64)


async def _on_frame(request: web.Request, ws: web.WebSocketResponse, user: User, data: str) -> None:
    try:
        frame = ReplyFrame.model_validate(orjson.loads(data))
    except (orjson.JSONDecodeError, ValidationError):
        await ws.send_json({"type": "error", "code": "bad_request", "message": "消息格式不正确"})
        return
    if frame.type == "ping":
        await _beat(request, user)
        await ws.send_json({"type": "pong"})
        return
    if frame.type == "typing":
        await _typing(request, user, frame.conversation_id)
        return
    if frame.type != "reply":
        await ws.send_json({"type": "error", "code": "bad_request", "message": "未知的消息类型"})
        return
    if await current_session(request) is None:  # signed out meanwhile (logout everywhere)
        await ws.send_json({"type": "error", "code": "unauthorized", "message": "请重新登录"})
        await ws.close()
        return
    try:
        message = await _reply(request, user, frame.conversation_id, frame.text)
    except DomainError as exc:
        await ws.send_json({"type": "error", "code": exc.code, "message": exc.message, "ref": frame.ref})
        return
    await ws.send_json({"type": "ack", "ref": frame.ref, "message": message.model_dump(mode="json")})


async def _typing(request: web.Request, user: User, conversation_id: int) -> None:
    """The agent serving this conversation is writing: the customer's widget shows "客服正在输入…"."""
    async with request.app[db_key]() as session:
        conversation = await session.get(Conversation, conversation_id)
    if conversation is None or conversation.state != ConversationState.AGENT or conversation.agent_id != user.id:
        return
    await request.app[bus_key].publish(
        "typing", {"conversation_id": conversation_id, "customer_id": conversation.customer_id,
                   "channel": conversation.channel},
    )  # fmt: skip


async def _beat(request: web.Request, user: User) -> None:
    async with transaction(request.app[db_key]) as session:
        await presence_verbs.touch(session, user.id or 0, now=utcnow())


async def expire_presence(app: web.Application) -> None:
    """Scheduled: staff whose consoles all went away past the grace period go offline (and everyone sees it)."""
    async with transaction(app[db_key]) as session:
        gone = await presence_verbs.expire(session, now=utcnow(), grace=app[settings_key].presence_grace)
    for user_id in gone:
        await app[bus_key].publish("presence", {"user_id": user_id, "presence": Presence.OFFLINE})


def setup(app: web.Application) -> None:
    router.install(app)
    app.router.add_get("/api/v1/console/ws", console_ws)
