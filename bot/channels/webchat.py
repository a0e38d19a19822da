"""Web-chat channel: the customer widget's HTTP API and WebSocket.

A visitor is identified by a signed cookie (HMAC over a random id); a forged cookie is
refused, never silently replaced. Messages are stored before they are acknowledged; the
HTTP fallback (`GET …?after=<id>`) and the WebSocket resume from the last id the widget
saw, so a reconnecting visitor gets what was sent while away exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import math
import re
import secrets
from typing import Any

import structlog
from aiohttp import WSMsgType, web
from pydantic import BaseModel, Field
from sqlmodel import col, select

from bot import attachments
from bot.engine import Engine, TurnResult
from bot.keys import bus_key, db_key, engine_key, outbox_key, settings_key
from bot.messages import Channel, InboundMessage, Kind
from bot.web.api import ADMIN, PUBLIC, ApiRouter, parse_model
from bot.web.auth import client_address
from bot.web.ratelimit import RateLimited, counters
from models import ChannelIdentity, Message, OutboxMessage, Sender, User, WidgetConfig, WidgetConfigBase, utcnow
from scrm.audit import Actor, record_audit
from scrm.db import transaction

log = structlog.get_logger(__name__)
router = ApiRouter("webchat")
VISITOR_COOKIE = "huike_visitor"
ACCOUNT = "web"
VISIBLE_SENDERS = (Sender.CUSTOMER, Sender.BOT, Sender.AGENT, Sender.SYSTEM)
VISITOR_ID = re.compile(r"[A-Za-z0-9_\-]{1,64}")  # what token_urlsafe makes; anything else is forged
RATE_WINDOW = 60.0
TOO_FAST = "您发送得太快了，请 {} 秒后再发"
TYPING = "typing"  # bus topic: an agent is writing to a customer (published by the console)


class WebchatIn(BaseModel):
    text: str = Field(min_length=1, max_length=2000)
    client_msg_id: str = Field(min_length=1, max_length=64, pattern=r"^[\w\-:.]+$")


class WebchatMessage(BaseModel):
    id: int
    direction: str
    sender: str
    text: str
    created_at: str
    choices: list[dict[str, str]] = []
    image: str | None = None  # a photo's name: GET /api/v1/webchat/images/{image}


class ImageQuery(BaseModel):
    client_msg_id: str = Field(min_length=1, max_length=64, pattern=r"^[\w\-:.]+$")


class WebchatPosted(BaseModel):
    id: int
    duplicate: bool
    replies: list[WebchatMessage]


class WebchatHistory(BaseModel):
    messages: list[WebchatMessage]


class AfterQuery(BaseModel):
    after: int = Field(default=0, ge=0)


# --- visitor identity -------------------------------------------------------------------

def _sign(secret: str, visitor: str) -> str:
    return hmac.new(secret.encode(), visitor.encode(), hashlib.sha256).hexdigest()[:32]


def visitor_of(request: web.Request) -> str | None:
    """The visitor id from the signed cookie; None when absent; 403 when forged."""
    raw = request.cookies.get(VISITOR_COOKIE)
    if not raw:
        return None
    visitor, _, signature = raw.partition(".")
    secret = request.app[settings_key].secret_key.get_secret_value()
    if not VISITOR_ID.fullmatch(visitor) or not hmac.compare_digest(signature.encode(errors="replace"),
                                                                    _sign(secret, visitor).encode()):
        log.warning("webchat_forged_cookie", path=request.path)
        raise web.HTTPForbidden(text="访客凭证无效，请刷新页面", reason="Bad Visitor Cookie")
    return visitor


def set_visitor_cookie(request: web.Request, response: web.StreamResponse, visitor: str) -> None:
    secret = request.app[settings_key].secret_key.get_secret_value()
    response.set_cookie(
        VISITOR_COOKIE, f"{visitor}.{_sign(secret, visitor)}", httponly=True, samesite="Lax",
        max_age=365 * 24 * 3600, path="/",
    )


async def check_rate(request: web.Request, visitor: str) -> None:
    """429 + Retry-After past HUIKE_WEBCHAT_MESSAGES_PER_VISITOR / _PER_ADDRESS a minute. A visitor over
    their own limit is refused before the address is counted, so they do not use up their neighbours'."""
    settings, store = request.app[settings_key], counters(request.app)
    for key, limit in ((f"webchat:visitor:{visitor}", settings.webchat_messages_per_visitor),
                       (f"webchat:address:{client_address(request)}", settings.webchat_messages_per_address)):
        count, left = await store.hit(key, RATE_WINDOW)
        if count > limit:
            if count == limit + 1:  # once per window: a flood must not become a flood of log lines
                log.warning("webchat_rate_limited", key=key.split(":")[1], limit=limit)
            raise RateLimited(TOO_FAST.format(math.ceil(left)), left)


# --- engine glue ------------------------------------------------------------------------

async def post_text(engine: Engine, visitor: str, body: WebchatIn) -> TurnResult:
    inbound = InboundMessage(
        channel=Channel.WEBCHAT,
        account=ACCOUNT,
        external_id=visitor,
        channel_msg_id=f"{visitor}:{body.client_msg_id}",
        kind=Kind.TEXT,
        text=body.text,
    )
    return await engine.handle(inbound)


def as_webchat(message: Message | dict[str, Any]) -> WebchatMessage:
    data = message if isinstance(message, dict) else message.model_dump()
    payload = data.get("payload") or {}
    created = data["created_at"]
    return WebchatMessage(
        id=data["id"],
        direction=str(data["direction"]),
        sender=str(data["sender"]),
        text=data["text"],
        created_at=created if isinstance(created, str) else created.isoformat(),
        choices=payload.get("choices", []),
        image=data.get("image") or (payload.get("image") or {}).get("name"),
    )


async def history(request: web.Request, visitor: str, after: int, limit: int = 200) -> list[WebchatMessage]:
    async with request.app[db_key]() as session:
        identity = (
            await session.exec(
                select(ChannelIdentity).where(
                    ChannelIdentity.channel == Channel.WEBCHAT,
                    ChannelIdentity.app_id == ACCOUNT,
                    ChannelIdentity.external_id == visitor,
                )
            )
        ).first()
        if identity is None:
            return []
        rows = (
            await session.exec(
                select(Message)
                .where(
                    Message.customer_id == identity.customer_id,
                    Message.channel == Channel.WEBCHAT,
                    col(Message.id) > after,
                    col(Message.sender).in_(VISIBLE_SENDERS),
                )
                .order_by(col(Message.id))
                .limit(limit)
            )
        ).all()
    return [as_webchat(m) for m in rows]


# --- HTTP API ----------------------------------------------------------------------------

@router.post("/webchat/messages", roles=PUBLIC, body=WebchatIn, response=WebchatPosted, status=201,
             extra_responses={200: "重复的 client_msg_id：已存过，不再重复处理"})
async def post_message(request: web.Request, user: None, body: WebchatIn) -> web.StreamResponse:
    """A visitor sends a message (sets the visitor cookie when absent); answers with the stored id."""
    visitor = visitor_of(request)
    new_visitor = visitor is None
    visitor = visitor or secrets.token_urlsafe(16)
    await check_rate(request, visitor)
    result = await post_text(request.app[engine_key], visitor, body)  # replies are delivered by being stored
    replies = [
        WebchatMessage(
            id=r.message_id, direction="out", sender="bot", text=r.text, created_at="",
            choices=r.payload.get("choices", []),
        )
        for r in result.replies
    ]
    posted = WebchatPosted(id=result.message_id, duplicate=result.duplicate, replies=replies)
    response = web.json_response(posted.model_dump(), status=200 if result.duplicate else 201)
    if new_visitor:
        set_visitor_cookie(request, response, visitor)
    return response


@router.post("/webchat/images", roles=PUBLIC, query=ImageQuery, response=WebchatPosted, status=201)
async def post_image(request: web.Request, user: None, query: ImageQuery) -> web.StreamResponse:
    """A visitor sends a photo: the body is the image itself (Content-Type image/jpeg|png|webp|gif, ≤ 5 MB;
    413 when larger, 415 when not such an image)."""
    visitor = visitor_of(request)
    new_visitor = visitor is None
    visitor = visitor or secrets.token_urlsafe(16)
    data = await _read_upto(request, attachments.MAX_BYTES + 1)  # (the app's JSON body limit is far smaller)
    if len(data) > attachments.MAX_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=attachments.MAX_BYTES, actual_size=len(data),
                                            text="图片不能超过 5 MB")  # fmt: skip
    try:
        stored = await attachments.store(request.app[settings_key].data_dir, data, request.content_type)
    except attachments.BadImage as exc:
        raise web.HTTPUnsupportedMediaType(text=str(exc), reason="Unsupported Image") from None
    inbound = InboundMessage(
        channel=Channel.WEBCHAT, account=ACCOUNT, external_id=visitor, kind=Kind.IMAGE,
        channel_msg_id=f"{visitor}:{query.client_msg_id}", payload={"image": stored.as_payload()},
    )  # fmt: skip
    result = await request.app[engine_key].handle(inbound)
    replies = [WebchatMessage(id=r.message_id, direction="out", sender="bot", text=r.text, created_at="")
               for r in result.replies]  # fmt: skip
    posted = WebchatPosted(id=result.message_id, duplicate=result.duplicate, replies=replies)
    response = web.json_response(posted.model_dump(), status=200 if result.duplicate else 201)
    if new_visitor:
        set_visitor_cookie(request, response, visitor)
    return response


async def _read_upto(request: web.Request, limit: int) -> bytes:
    """The body, but never more than `limit` bytes of it in memory."""
    chunks, size = [], 0
    while size < limit:
        chunk = await request.content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


@router.get("/webchat/images/{name}", roles=PUBLIC)
async def get_image(request: web.Request, user: None) -> web.StreamResponse:
    """A photo of this visitor's conversation (nobody else's)."""
    visitor = visitor_of(request)
    name = request.match_info["name"]
    found = attachments.locate(request.app[settings_key].data_dir, name)
    customer_id = await _customer_of(request, visitor) if visitor else None
    if found is None or customer_id is None or not await _has_image(request, customer_id, name):
        raise web.HTTPNotFound(text="图片不存在", reason="Not Found")
    return image_response(*found)


async def _has_image(request: web.Request, customer_id: int, name: str) -> bool:
    async with request.app[db_key]() as session:
        rows = (
            await session.exec(
                select(Message.payload).where(Message.customer_id == customer_id, Message.kind == Kind.IMAGE)
            )
        ).all()
    return any((payload.get("image") or {}).get("name") == name for payload in rows)


def image_response(path: Any, content_type: str) -> web.StreamResponse:
    """A stored photo, never sniffed as anything else by the browser."""
    return web.FileResponse(path, headers={
        "Content-Type": content_type, "X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=86400",
        "Content-Security-Policy": "default-src 'none'",
    })  # fmt: skip


@router.get("/webchat/config", roles=PUBLIC, response=WidgetConfigBase)
async def get_config(request: web.Request, user: None) -> WidgetConfigBase:
    """The widget's welcome message and quick-reply buttons."""
    async with request.app[db_key]() as session:
        row = await session.get(WidgetConfig, 1)
    return WidgetConfigBase.model_validate(row.model_dump()) if row else WidgetConfigBase()


@router.put("/webchat/config", roles=ADMIN, body=WidgetConfigBase, response=WidgetConfigBase)
async def put_config(request: web.Request, user: User, body: WidgetConfigBase) -> WidgetConfigBase:
    """Change the welcome message and quick replies (admin; audited)."""
    replies = [q.model_dump() for q in body.quick_replies]
    async with transaction(request.app[db_key]) as session:
        row = await session.get(WidgetConfig, 1)
        before = {"welcome": row.welcome, "quick_replies": row.quick_replies} if row else {}
        row = row or WidgetConfig(id=1, welcome=body.welcome)
        row.welcome, row.quick_replies, row.updated_at = body.welcome, replies, utcnow()
        session.add(row)
        record_audit(session, actor=Actor(id=user.id, name=user.username, role=str(user.role)),
                     action="widget.update", object_type="widget", object_id=1, before=before,
                     after={"welcome": body.welcome, "quick_replies": replies})  # fmt: skip
    return body


@router.get("/webchat/messages", roles=PUBLIC, query=AfterQuery, response=WebchatHistory)
async def get_messages(request: web.Request, user: None, query: AfterQuery) -> WebchatHistory:
    """Messages of this visitor after the given id (the HTTP fallback of the WebSocket)."""
    visitor = visitor_of(request)
    if visitor is None:
        return WebchatHistory(messages=[])
    return WebchatHistory(messages=await history(request, visitor, query.after))


async def websocket(request: web.Request) -> web.StreamResponse:
    """Live chat: sends what was missed after `?after=`, then pushes new messages as they happen."""
    visitor = visitor_of(request) or secrets.token_urlsafe(16)
    after = parse_model(AfterQuery, dict(request.query)).after  # type: ignore[attr-defined]
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=16 * 1024)
    if "huike_visitor" not in request.cookies:
        set_visitor_cookie(request, ws, visitor)
    await ws.prepare(request)
    sent: set[int] = set()

    async def send(message: WebchatMessage) -> None:
        if message.id not in sent:
            sent.add(message.id)
            await ws.send_json({"type": "message", "message": message.model_dump()})

    async with request.app[bus_key].subscribe() as queue:
        for message in await history(request, visitor, after):
            await send(message)
        async def send_typing() -> None:
            await ws.send_json({"type": "typing"})

        pusher = asyncio.create_task(_push(request, visitor, queue, send, send_typing))
        try:
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    await _on_frame(request, ws, visitor, frame.data)
        finally:
            pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pusher
    return ws


async def _on_frame(request: web.Request, ws: web.WebSocketResponse, visitor: str, data: str) -> None:
    import orjson
    from pydantic import ValidationError

    try:
        body = WebchatIn.model_validate(orjson.loads(data))
    except (orjson.JSONDecodeError, ValidationError):
        await ws.send_json({"type": "error", "code": "bad_request", "message": "消息格式不正确"})
        return
    try:
        await check_rate(request, visitor)
    except RateLimited as exc:
        await ws.send_json({"type": "error", "code": exc.code, "message": exc.message,
                            "retry_after": exc.retry_after, "client_msg_id": body.client_msg_id})  # fmt: skip
        return
    try:
        result = await post_text(request.app[engine_key], visitor, body)
    except Exception:  # not stored: the widget resends it with the same client_msg_id
        log.exception("webchat_ws_failed")
        retry = {"code": "unavailable", "message": "发送失败，正在重试", "client_msg_id": body.client_msg_id}
        await ws.send_json({"type": "error", **retry})
        return
    await ws.send_json({"type": "ack", "id": result.message_id, "client_msg_id": body.client_msg_id})


async def _push(request: web.Request, visitor: str, queue: asyncio.Queue[Any], send: Any, send_typing: Any) -> None:
    """Forward bus events for this visitor's customer to the socket."""
    customer_id = await _customer_of(request, visitor)
    while True:
        topic, data = await queue.get()
        if topic not in ("message", TYPING) or data.get("channel") != Channel.WEBCHAT:
            continue
        if customer_id is None:
            customer_id = await _customer_of(request, visitor)
        if data.get("customer_id") != customer_id:
            continue
        if topic == TYPING:  # the agent is writing: the widget shows it for a few seconds
            await send_typing()
        elif data.get("sender") in VISIBLE_SENDERS:
            await send(as_webchat(data))


async def _customer_of(request: web.Request, visitor: str) -> int | None:
    async with request.app[db_key]() as session:
        identity = (
            await session.exec(
                select(ChannelIdentity).where(
                    ChannelIdentity.channel == Channel.WEBCHAT, ChannelIdentity.external_id == visitor
                )
            )
        ).first()
    return identity.customer_id if identity else None


async def deliver(row: OutboxMessage) -> str:
    """Web-chat messages are delivered by being stored: the widget pulls or is pushed them."""
    return "push"


def setup(app: web.Application) -> None:
    router.install(app)
    app.router.add_get("/api/v1/webchat/ws", websocket)
    app[outbox_key].register(Channel.WEBCHAT, deliver, stored_is_delivered=True)
