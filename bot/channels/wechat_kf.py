"""微信客服 (WeChat Customer Service, via WeCom): pull with kf/sync_msg, reply with kf/send_msg.

The `kf_msg_or_event` callback only says "there is something": the messages are pulled with
`kf/sync_msg` from a cursor stored per open_kfid. Each page's messages are stored (committed)
before the cursor advances, so a crash re-reads at most one page, and the (channel, msgid) unique
key drops what was already stored: a restart neither skips nor repeats. Replies go through the
outbox with the channel's limits: only within 48 hours of the customer's last message and at most
5 per customer message. When an agent takes over or hands back, the session state follows
(`kf/service_state/trans`).

Here a 微信客服 account (open_kfid) is the channel account: `InboundMessage.account` = open_kfid.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, cast

import structlog
from aiohttp import web
from sqlmodel import select

from bot.channels import wecom
from bot.channels.wechat_api import WeChatApiError, WeChatUnavailable
from bot.channels.wechat_common import LimitReached, WindowClosed, render_api_message, replied_inbound, reply_slot
from bot.keys import bus_key, db_key, engine_key, outbox_key, redis_key, scheduler_key, settings_key
from bot.messages import Channel, InboundMessage, Kind
from bot.outbox import GiveUp, RetryLater
from models import Conversation, ConversationState, OutboxMessage, User, utcnow
from models.wechat import WeChatKfCursor
from scrm.db import transaction

log = structlog.get_logger(__name__)
CUSTOMER, SYSTEM_EVENT = 3, 4  # msg "origin": 3 = the WeChat customer, 4 = system event, 5 = servicer
# conversation state -> 微信客服 service_state (1 智能助手接待, 2 待接入池排队中, 3 人工接待, 4 已结束)
SERVICE_STATE = {ConversationState.BOT: 1, ConversationState.QUEUED: 2, ConversationState.AGENT: 3,
                 ConversationState.CLOSED: 4}  # fmt: skip
_KINDS = {"text", "image", "voice", "video", "file", "location", "link"}
# Embedded mode (no Redis): one sync lock per open_kfid, per app (never shared across apps or event loops).
_local_locks: weakref.WeakKeyDictionary[web.Application, dict[str, asyncio.Lock]] = weakref.WeakKeyDictionary()


def to_inbound(open_kfid: str, msg: dict[str, Any]) -> InboundMessage | None:
    """A sync_msg item as an InboundMessage; None for what is not the customer's (servicer echoes …)."""
    msgtype = str(msg.get("msgtype", ""))
    origin = int(msg.get("origin") or 0)
    payload: dict[str, Any] = {"open_kfid": open_kfid, "msgtype": msgtype}
    text, event = "", None
    external_userid = str(msg.get("external_userid") or "")
    if msgtype == "event":
        ev = msg.get("event") or {}
        if ev.get("event_type") != "enter_session":
            return None  # servicer/session status changes, send failures: not from the customer
        event, external_userid = "enter_session", str(ev.get("external_userid") or "")
        payload |= {"welcome_code": ev.get("welcome_code", ""), "scene": ev.get("scene", ""),
                    "scene_param": ev.get("scene_param", "")}  # fmt: skip
        kind = Kind.EVENT
    elif origin != CUSTOMER:
        return None
    else:
        body = msg.get(msgtype) or {}
        kind = Kind(msgtype) if msgtype in _KINDS else Kind.UNKNOWN
        if kind is Kind.TEXT:
            text = str(body.get("content", ""))
        elif kind is Kind.LINK:
            text = str(body.get("title", ""))
            payload["url"] = body.get("url", "")
        elif kind is Kind.LOCATION:
            text = str(body.get("name") or body.get("address") or "")
            payload |= {"latitude": body.get("latitude"), "longitude": body.get("longitude")}
        elif "media_id" in body:
            payload["media_id"] = body["media_id"]
    if not external_userid:
        return None
    sent = msg.get("send_time")
    return InboundMessage(
        channel=Channel.WECHAT_KF,
        account=open_kfid,
        external_id=external_userid,
        channel_msg_id=f"{open_kfid}:{msg.get('msgid', '')}"[:128],
        kind=kind,
        text=text,
        event=event,
        payload=payload,
        sent_at=datetime.fromtimestamp(int(sent), UTC) if sent else None,
    )


@contextlib.asynccontextmanager
async def _sync_lock(app: web.Application, corp: str, open_kfid: str) -> AsyncIterator[None]:
    """One sync per open_kfid at a time across workers (Redis lock), or in this process."""
    key = f"kfsync:{corp}:{open_kfid}"
    if cast(Any, app[redis_key]) is not None:
        async with wecom.client(app, corp).store.lock(key):
            yield
        return
    async with _local_locks.setdefault(app, {}).setdefault(key, asyncio.Lock()):
        yield


async def _cursor(app: web.Application, corp: str, open_kfid: str) -> str:
    async with app[db_key]() as session:
        row = (
            await session.exec(select(WeChatKfCursor).where(WeChatKfCursor.corp == corp,
                                                            WeChatKfCursor.open_kfid == open_kfid))
        ).first()  # fmt: skip
    return row.cursor if row else ""


async def _save_cursor(app: web.Application, corp: str, open_kfid: str, cursor: str, taken: int) -> None:
    async with transaction(app[db_key]) as session:
        row = (
            await session.exec(select(WeChatKfCursor).where(WeChatKfCursor.corp == corp,
                                                            WeChatKfCursor.open_kfid == open_kfid))
        ).first()  # fmt: skip
        if row is None:
            row = WeChatKfCursor(corp=corp, open_kfid=open_kfid)
        row.cursor, row.synced_count, row.updated_at = cursor, row.synced_count + taken, utcnow()
        session.add(row)


async def sync(app: web.Application, corp: str, open_kfid: str, token: str = "") -> int:
    """Pull everything new for one 微信客服 account, store it, answer it; returns messages taken in."""
    engine, taken = app[engine_key], 0
    try:
        async with _sync_lock(app, corp, open_kfid):
            while True:
                cursor = await _cursor(app, corp, open_kfid)
                page = await wecom.client(app, corp).kf_sync_msg(open_kfid=open_kfid, cursor=cursor, token=token)
                stored: list[int] = []
                for item in page.get("msg_list") or []:
                    inbound = to_inbound(open_kfid, item)
                    if inbound is None:
                        continue
                    message, duplicate = await engine.receive(inbound)
                    if not duplicate and message.id is not None:
                        stored.append(message.id)
                await _save_cursor(app, corp, open_kfid, str(page.get("next_cursor") or cursor), len(stored))
                taken += len(stored)
                for message_id in stored:  # in order; the engine serialises per conversation
                    await engine.process(message_id)
                app[outbox_key].poke()
                if not page.get("has_more"):
                    return taken
    except (WeChatApiError, WeChatUnavailable) as exc:
        # Nothing lost: the cursor only moved past stored messages; the next event or the periodic
        # sync continues from there.
        log.warning("kf_sync_failed", open_kfid=open_kfid, error=str(exc), taken=taken)
        return taken


async def sync_all(app: web.Application) -> None:
    """Periodic catch-up for every known 微信客服 account (in case a callback was missed)."""
    async with app[db_key]() as session:
        rows = (await session.exec(select(WeChatKfCursor))).all()
    for row in rows:
        await sync(app, row.corp, row.open_kfid)


# --- delivery ---------------------------------------------------------------------------------


async def _welcome_code(app: web.Application, row: OutboxMessage) -> str:
    """The enter_session welcome code, when this row answers that event (send_msg_on_event)."""
    inbound = await replied_inbound(app, row)
    if inbound is None or inbound.payload.get("event") != "enter_session":
        return ""
    return str(inbound.payload.get("welcome_code") or "")


def make_deliverer(app: web.Application) -> Any:
    async def deliver(row: OutboxMessage) -> str:
        settings = app[settings_key]
        api = wecom.client(app)
        message = render_api_message(row.payload)
        try:
            code = await _welcome_code(app, row)
            if code:
                await api.request("POST", "/cgi-bin/kf/send_msg_on_event", json_body={"code": code, **message})
                return "api"
            try:
                async with reply_slot(app, row, Channel.WECHAT_KF, settings.wechat_kf_max_replies):
                    await api.kf_send_msg(open_kfid=row.app_id, external_userid=row.external_id, message=message)
            except WindowClosed:
                raise GiveUp("微信客服：超过48小时回复时限，客户再次发言后才能回复") from None
            except LimitReached:
                raise GiveUp(f"微信客服：已达每条客户消息最多 {settings.wechat_kf_max_replies} 条回复的上限") from None
            return "api"
        except WeChatApiError as exc:
            if exc.transient:
                raise RetryLater(str(exc)) from exc
            raise GiveUp(str(exc)) from exc
        except WeChatUnavailable as exc:
            raise RetryLater(str(exc)) from exc

    return deliver


# --- session state follows agent takeover / handback ----------------------------------------


async def follow_conversation_state(app: web.Application) -> None:
    """Move the 微信客服 session when a conversation is queued, taken by an agent, handed back or closed."""
    async with app[bus_key].subscribe() as queue:
        while True:
            topic, data = await queue.get()
            if not topic.startswith("conversation.") or not data.get("conversation_id"):
                continue
            try:
                await transfer(app, int(data["conversation_id"]))
            except Exception as exc:  # keep following; the next state change tries again
                log.warning("kf_state_transfer_failed", topic=topic, error=str(exc))


async def transfer(app: web.Application, conversation_id: int) -> int | None:
    """Tell 微信客服 the state our conversation is in now; returns the service_state sent (None: not kf)."""
    async with app[db_key]() as session:
        conversation = await session.get(Conversation, conversation_id)
        if conversation is None or conversation.channel != Channel.WECHAT_KF:
            return None
        agent = await session.get(User, conversation.agent_id) if conversation.agent_id else None
    state = SERVICE_STATE.get(ConversationState(conversation.state))
    if state is None:
        return None
    redis = cast(Any, app[redis_key])
    if redis is not None:  # every worker hears the event (Redis bus): one of them makes the call
        key = f"{app[settings_key].redis_namespace}:kf:trans:{conversation_id}:{state}"
        if not await redis.set(key, "1", nx=True, ex=30):
            return None
    await wecom.client(app).kf_trans(
        open_kfid=conversation.app_id,
        external_userid=conversation.external_id,
        service_state=state,
        servicer_userid=agent.username if state == 3 and agent else "",  # staff username = WeCom userid
    )
    log.info("kf_state_transferred", conversation_id=conversation_id, service_state=state)
    return state


async def _state_follower(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(follow_conversation_state(app), name="kf-state-follower")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def setup(app: web.Application) -> None:
    """Called from wecom.setup: 微信客服 uses the WeCom application's credentials."""
    app[outbox_key].register(Channel.WECHAT_KF, make_deliverer(app))
    if wecom.accounts(app[settings_key]):
        app.cleanup_ctx.append(_state_follower)
        app[scheduler_key].add_job(sync_all, "interval", minutes=5, args=[app], id="kf-sync-all",
                                   coalesce=True, max_instances=1)  # fmt: skip
