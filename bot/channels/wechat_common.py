"""What the Official Account and WeCom callbacks share: signatures, AES, safe XML, message mapping.

WeChat's callback protocol is the same on both platforms: a SHA1 signature over the sorted
[token, timestamp, nonce(, encrypt)], an optional AES-256-CBC "safe mode" envelope whose plaintext
ends with the receiving AppId / CorpId, and a flat XML body. wechatpy does the crypto and the
message typing; defusedxml looks at every XML document first, because wechatpy hands the text to
xmltodict/expat, which we do not trust with DTDs and entity declarations.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

import defusedxml.ElementTree as SafeET
import structlog
import xmltodict
from aiohttp import web
from defusedxml import DefusedXmlException
from sqlalchemy import func
from sqlalchemy.exc import DBAPIError
from sqlmodel import col, select
from wechatpy import parse_message as parse_oa_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.enterprise import parse_message as parse_wecom_message
from wechatpy.enterprise.crypto import WeChatCrypto as WeComCrypto
from wechatpy.enterprise.exceptions import InvalidCorpIdException
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.utils import WeChatSigner

from bot.channels.wechat_api import TokenStore, token_store
from bot.engine import AnswerSlot, Reply
from bot.keys import db_key, engine_key, outbox_key, redis_key, settings_key, spawn
from bot.messages import Channel, InboundMessage, Kind
from bot.web.ratelimit import counters
from models import ChannelIdentity, Message, OutboxMessage, OutboxStatus, aware, utcnow
from scrm.audit import Actor
from scrm.db import transaction
from scrm.identity import merge_by_unionid

log = structlog.get_logger(__name__)
T = TypeVar("T")
WINDOW = timedelta(hours=48)  # customer-service messages only within 48 h of the customer's last one
_KINDS = {k.value: k for k in Kind}
TIMESTAMP = re.compile(r"[0-9]{1,12}")
ID_FIELDS = ("FromUserName", "ToUserName", "ExternalUserID", "UnionId", "UnionID", "UserID", "MsgId", "MsgID")
MAX_ID = 128


class CallbackRejected(Exception):
    """A callback we refuse: answered with `status`, logged with `reason`, never stored."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


# --- signatures --------------------------------------------------------------------------------


def sign(*parts: str) -> str:
    """WeChat's signature: sha1 over the sorted concatenation of the parts."""
    signer = WeChatSigner()
    signer.add_data(*parts)
    return str(signer.signature)


def verify_signature(expected: str | None, *parts: str) -> None:
    # Compared as bytes: hmac.compare_digest refuses non-ASCII str, and a hostile query may carry any.
    if not expected or not hmac.compare_digest(sign(*parts).encode(), expected.lower().encode()):
        raise CallbackRejected(403, "bad signature")


def check_timestamp(timestamp: str | None, window: int, now: float | None = None) -> None:
    """Refuse replays: the signed timestamp must be within `window` seconds of our clock."""
    if not timestamp or not TIMESTAMP.fullmatch(timestamp):  # 400 digits would overflow a float (500)
        raise CallbackRejected(403, "missing or malformed timestamp")
    ts = int(timestamp)
    if abs((now if now is not None else time.time()) - ts) > window:
        raise CallbackRejected(403, "timestamp outside the replay window")


async def refuse_reused_signature(app: web.Application, account: Account, timestamp: str, nonce: str,
                                  body: bytes) -> None:  # fmt: skip
    """In plaintext mode the URL signature covers (token, timestamp, nonce) but not the body: a captured
    query could carry another body for as long as the timestamp is accepted. Each (timestamp, nonce) is
    remembered with a digest of its body: WeChat resending the same message passes (and is deduplicated
    by MsgId as usual), the same signature with a different body is refused."""
    digest = hashlib.sha256(body).hexdigest()[:32]
    key = f"wechat:nonce:{account.channel}:{account.name}:{timestamp}:{nonce[:64]}"
    ttl = 2 * app[settings_key].wechat_replay_window + 60  # the timestamp is accepted from -window to +window
    earlier = await counters(app).remember(key, digest, ttl)
    if earlier is not None and earlier != digest:
        raise CallbackRejected(403, "signature reused with a different body")


# --- XML -------------------------------------------------------------------------------------


def _defused_root_check(body: bytes | str) -> None:
    """defusedxml raises on any DTD (billion laughs, external or parameter entities)."""
    try:
        root = SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise CallbackRejected(400, f"hostile XML refused ({type(exc).__name__})") from None
    except SafeET.ParseError as exc:
        raise CallbackRejected(400, f"malformed XML ({exc})") from None
    if root.tag != "xml":
        raise CallbackRejected(400, "XML root is not <xml>")


def _utf8(body: bytes | str) -> str:
    """WeChat sends UTF-8: anything else (GBK, UTF-16, Latin-1) is refused with a 400, not a 500."""
    if isinstance(body, str):
        return body
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise CallbackRejected(400, "body is not UTF-8") from None


def safe_xml_dict(body: bytes | str) -> dict[str, Any]:
    """The <xml> root of a document as a dict; only XML that defusedxml accepted reaches xmltodict."""
    text = _utf8(body)
    _defused_root_check(body)
    data = xmltodict.parse(text, disable_entities=True).get("xml")
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True, slots=True)
class Callback:
    """A parsed callback: the raw fields plus wechatpy's classification of it."""

    data: dict[str, Any]
    msg_type: str  # wechatpy's type ("text", "event", "unknown" …; "" for suite info_* notices)
    event: str | None  # wechatpy's event name (qrscene subscribe becomes "subscribe_scan")


def parse_callback(body: bytes | str, *, wecom: bool) -> Callback:
    """Parse callback XML with wechatpy once defusedxml has vetted it."""
    text = _utf8(body)
    _defused_root_check(body)
    data = xmltodict.parse(text, disable_entities=True).get("xml")
    if not isinstance(data, dict):
        return Callback({}, "", None)
    for key in ID_FIELDS:  # ids are stored in 128-character columns (PostgreSQL refuses longer ones)
        if len(_text(data, key)) > MAX_ID:
            raise CallbackRejected(400, f"{key} longer than {MAX_ID} characters")
    if not isinstance(data.get("MsgType"), str):  # suite notices (InfoType) are not messages
        return Callback(data, "", None)
    message = (parse_wecom_message if wecom else parse_oa_message)(text)
    return Callback(dict(message._data), str(message.type), getattr(message, "event", None))


def render_xml(fields: dict[str, Any]) -> str:
    """A flat-ish reply document (<xml>…</xml>) with text in CDATA, as WeChat expects."""
    return xmltodict.unparse({"xml": fields}, full_document=False)


# --- AES safe mode ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cipher:
    """AES safe mode for one account: token + EncodingAESKey + the id the plaintext must end with."""

    token: str
    aes_key: str
    receive_id: str  # AppId (Official Account) or CorpId (WeCom)
    wecom: bool = False

    def _crypto(self) -> Any:
        cls = WeComCrypto if self.wecom else WeChatCrypto
        return cls(self.token, self.aes_key, self.receive_id)

    def decrypt(self, encrypt: str, msg_signature: str | None, timestamp: str, nonce: str) -> str:
        """Verify msg_signature, decrypt, check the receive id; returns the inner XML text."""
        verify_signature(msg_signature, self.token, timestamp, nonce, encrypt)
        try:
            plain = self._crypto().decrypt_message({"Encrypt": encrypt}, msg_signature, timestamp, nonce)
        except InvalidSignatureException:
            raise CallbackRejected(403, "bad msg_signature") from None
        except (InvalidAppIdException, InvalidCorpIdException):
            raise CallbackRejected(403, "wrong AppId/CorpId in the encrypted payload") from None
        except Exception as exc:  # garbage ciphertext: bad base64, padding, length or utf-8
            raise CallbackRejected(400, f"cannot decrypt ({type(exc).__name__})") from None
        return str(plain)

    def encrypt(self, xml: str, nonce: str, timestamp: str | None = None) -> str:
        """The encrypted reply envelope (Encrypt, MsgSignature, TimeStamp, Nonce)."""
        return str(self._crypto().encrypt_message(xml, nonce, timestamp or str(int(time.time()))))


def open_envelope(
    envelope: dict[str, Any], cipher: Cipher, *, msg_signature: str | None, timestamp: str, nonce: str
) -> Callback:
    encrypt = envelope.get("Encrypt")
    if not isinstance(encrypt, str) or not encrypt:
        raise CallbackRejected(400, "encrypted callback without <Encrypt>")
    return parse_callback(cipher.decrypt(encrypt, msg_signature, timestamp, nonce), wecom=cipher.wecom)


# --- mapping to channel-neutral messages -----------------------------------------------------


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    return value.strip() if isinstance(value, str) else ""


def sender_of(data: dict[str, Any]) -> str:
    """The customer's id: ExternalUserID for WeCom external-contact events, else FromUserName."""
    return _text(data, "ExternalUserID") or _text(data, "FromUserName")


def dedup_key(account: str, data: dict[str, Any]) -> str:
    """WeChat retries the same callback up to 3 times: MsgId, or sender+CreateTime+event for events."""
    msg_id = _text(data, "MsgId") or _text(data, "MsgID")
    if msg_id:
        return f"{account}:{msg_id}"[:128]
    parts = [
        sender_of(data),
        _text(data, "CreateTime") or _text(data, "TimeStamp"),
        _text(data, "Event") or _text(data, "InfoType") or _text(data, "MsgType"),
        _text(data, "ChangeType"),
        _text(data, "UserID"),
        _text(data, "Token"),
    ]
    return f"{account}:" + ":".join(p for p in parts if p)[:110]


def is_customer_callback(data: dict[str, Any]) -> bool:
    """System notifications (suite info_*, WeCom contact sync from "sys") have no customer."""
    sender = sender_of(data)
    return bool(sender) and sender != "sys" and bool(_text(data, "MsgType"))


def to_inbound(cb: Callback, *, channel: Channel, account: str) -> InboundMessage:
    """Map a parsed callback to an `InboundMessage` (unknown types map to Kind.UNKNOWN)."""
    data = cb.data
    raw_type = _text(data, "MsgType").lower()
    kind = _KINDS.get(raw_type, Kind.UNKNOWN)
    payload: dict[str, Any] = {"msg_type": raw_type, "to": _text(data, "ToUserName")}
    text = ""
    ev: str | None = None
    if kind is Kind.TEXT:
        text = _text(data, "Content")
    elif kind is Kind.VOICE:
        text = _text(data, "Recognition")
        payload |= {"media_id": _text(data, "MediaId"), "format": _text(data, "Format")}
    elif kind in (Kind.IMAGE, Kind.VIDEO, Kind.SHORTVIDEO):
        payload |= {
            "media_id": _text(data, "MediaId"),
            "pic_url": _text(data, "PicUrl"),
            "thumb_media_id": _text(data, "ThumbMediaId"),
        }
    elif kind is Kind.LOCATION:
        payload |= {
            "latitude": _text(data, "Location_X"),
            "longitude": _text(data, "Location_Y"),
            "scale": _text(data, "Scale"),
            "label": _text(data, "Label"),
        }
        text = _text(data, "Label")
    elif kind is Kind.LINK:
        text = _text(data, "Title")
        payload |= {"url": _text(data, "Url"), "description": _text(data, "Description")}
    elif kind is Kind.FILE:
        text = _text(data, "Title") or _text(data, "FileName")
        payload |= {"media_id": _text(data, "MediaId"), "file_name": _text(data, "FileName")}
    elif kind is Kind.EVENT:
        ev, extra = _event_fields(data, cb.event)
        payload |= extra
    else:
        payload["raw"] = {k: v for k, v in data.items() if isinstance(v, str)}
    return InboundMessage(
        channel=channel,
        account=account,
        external_id=sender_of(data),
        channel_msg_id=dedup_key(account, data),
        kind=kind,
        text=text,
        event=ev,
        payload=payload,
        unionid=_text(data, "UnionId") or _text(data, "UnionID") or None,
        sent_at=_sent_at(data),
    )


def _event_fields(data: dict[str, Any], typed_event: str | None) -> tuple[str, dict[str, Any]]:
    """Normalised event name and its fields.

    The event keeps WeChat's spelling (subscribe, SCAN, CLICK …); WeCom's change_external_contact
    is named by its ChangeType (add_external_contact …) since that is what the customer did.
    """
    raw = _text(data, "Event")
    extra: dict[str, Any] = {"event_key": _text(data, "EventKey")}
    if raw.lower() in ("change_external_contact", "change_external_chat", "change_contact"):
        extra |= {
            "wecom_event": raw,
            "follow_user": _text(data, "UserID"),
            "state": _text(data, "State"),
            "welcome_code": _text(data, "WelcomeCode"),
            "chat_id": _text(data, "ChatId"),
        }
        return (_text(data, "ChangeType") or raw), extra
    if typed_event in ("subscribe_scan", "subscribe_scan_product"):
        # wechatpy renamed the event and stripped "qrscene_": a follow through a parametric QR code
        raw = "subscribe"
        extra["scene"] = extra["event_key"].removeprefix("qrscene_")
        extra["ticket"] = _text(data, "Ticket")
    elif raw.upper() == "SCAN":
        extra["scene"] = extra["event_key"]
        extra["ticket"] = _text(data, "Ticket")
    elif raw.upper() == "LOCATION":
        extra |= {
            "latitude": _text(data, "Latitude"),
            "longitude": _text(data, "Longitude"),
            "precision": _text(data, "Precision"),
        }
    elif raw.upper() == "TEMPLATESENDJOBFINISH":
        extra |= {"status": _text(data, "Status"), "msg_id": _text(data, "MsgID")}
    elif raw == "kf_msg_or_event":
        extra |= {"token": _text(data, "Token"), "open_kfid": _text(data, "OpenKfId")}
    return raw, extra


def _sent_at(data: dict[str, Any]) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(_text(data, "CreateTime")), UTC)
    except (ValueError, OverflowError, OSError):
        return None


# --- the callback flow shared by the Official Account and WeCom routes ---------------------------
#
# verify -> parse -> dedup claim (Redis SET NX, backed by the DB unique key) -> one transaction
# stores the message and records the replies -> a passive reply within the budget, else the message
# is stored on its own, WeChat hears "success" and the outbox delivers the replies through the API.
# The turn and the waiting request race for one AnswerSlot, so a reply goes by exactly one path.

MAX_CALLBACK_BYTES = 32 * 1024  # real callbacks are < 4 KiB even encrypted
SUCCESS = "success"


@dataclass(frozen=True, slots=True)
class Account:
    """One configured callback endpoint (an Official Account, or a WeCom application)."""

    channel: Channel
    name: str
    token: str
    receive_id: str  # AppId / CorpId
    aes_key: str = ""

    @property
    def cipher(self) -> Cipher | None:
        if not self.aes_key:
            return None
        return Cipher(self.token, self.aes_key, self.receive_id, wecom=self.channel is not Channel.WECHAT_OA)


def success() -> web.Response:
    return web.Response(text=SUCCESS, content_type="text/plain")


def rejected(request: web.Request, exc: CallbackRejected, account: str) -> web.Response:
    log.warning(
        "wechat_callback_rejected",
        reason=exc.reason,
        status=exc.status,
        account=account,
        path=request.path,
        remote=request.remote,
    )
    return web.Response(status=exc.status, text=exc.reason, content_type="text/plain")


async def read_body(request: web.Request, limit: int = MAX_CALLBACK_BYTES) -> bytes:
    """The request body, refusing anything over `limit` without reading it all."""
    if request.content_length is not None and request.content_length > limit:
        raise CallbackRejected(413, f"body over {limit} bytes")
    body = await request.content.read(limit + 1)
    if len(body) > limit:
        raise CallbackRejected(413, f"body over {limit} bytes")
    if not body.strip():
        raise CallbackRejected(400, "empty body")
    return body


def _redis(app: web.Application) -> Any:
    return cast(Any, app[redis_key])  # redis.asyncio.Redis or None (embedded)


IN_FLIGHT_TTL = 10  # seconds a claim lives before the message is stored: a crashed worker blocks retries briefly


def _seen_key(app: web.Application, key: str) -> str:
    return f"{app[settings_key].redis_namespace}:wechat:seen:{key}"


async def claim_dedup(app: web.Application, key: str) -> bool:
    """True when this worker is the first to see `key` (Redis SET NX); always True when embedded.

    The claim is short-lived until the message is stored (`confirm_dedup`), so WeChat's later retry
    still gets through if the worker that claimed it died before storing.
    """
    redis: Any = _redis(app)
    if redis is None:
        return True  # one process: the DB unique key and the engine's claim decide
    try:
        return bool(await redis.set(_seen_key(app, key), "1", nx=True, ex=IN_FLIGHT_TTL))
    except Exception as exc:  # Redis away: fall back to the database unique key
        log.warning("wechat_dedup_redis_failed", error=str(exc))
        return True


async def confirm_dedup(app: web.Application, key: str) -> None:
    """The message is stored: keep its key for the whole dedup window."""
    redis: Any = _redis(app)
    if redis is not None:
        with contextlib.suppress(Exception):
            await redis.set(_seen_key(app, key), "1", ex=app[settings_key].wechat_dedup_ttl)


async def release_dedup(app: web.Application, key: str) -> None:
    redis: Any = _redis(app)
    if redis is not None:
        with contextlib.suppress(Exception):
            await redis.delete(_seen_key(app, key))


def cached_client(
    app: web.Application, clients_key: web.AppKey[dict[str, Any]], account: str, build: Callable[[TokenStore], T]
) -> T:
    """One API client per account and app; every client of the app shares one token store."""
    clients = app[clients_key]
    if account not in clients:
        store = clients.setdefault("_store", token_store(app[redis_key], app[settings_key].redis_namespace))
        clients[account] = build(store)
    return cast(T, clients[account])


def account_of(request: web.Request, accounts: dict[str, Account]) -> Account:
    """The account named in the callback URL (404 for one we don't serve)."""
    account = accounts.get(request.match_info["account"])
    if account is None:
        raise web.HTTPNotFound(text="unknown account")
    return account


async def handle_message(
    request: web.Request,
    account: Account,
    cb: Callback,
    *,
    reply_cipher: Cipher | None,
    started: float,
    after_turn: Callable[[web.Application, InboundMessage], Coroutine[Any, Any, None]],
) -> web.Response:
    """Store and answer in one transaction, as a passive reply within the budget; returns WeChat's HTTP answer.

    Past the budget, or when the turn fails, the message is stored on its own before WeChat hears
    "success", and the replies go through the outbox. With no passive answer possible (a budget of 0,
    a WeCom system event) it is stored first and answered after the acknowledgement.
    """
    app = request.app
    if not is_customer_callback(cb.data):
        log.info("wechat_system_notice", account=account.name, kind=cb.data.get("InfoType") or cb.data.get("Event"))
        return success()
    inbound = to_inbound(cb, channel=account.channel, account=account.name)
    dedup = f"{inbound.channel}:{inbound.channel_msg_id}"
    if not await claim_dedup(app, dedup):
        log.info("wechat_duplicate_dropped", key=inbound.channel_msg_id)
        return success()

    def then(_answered: asyncio.Task[Any]) -> None:  # e.g. a unionid merge, which must not race the turn's rows
        spawn(app, after_turn(app, inbound), name="wechat-after-turn")

    budget = app[settings_key].wechat_reply_budget - (time.monotonic() - started)
    if budget <= 0 or _text(cb.data, "FromUserName") == "sys":  # a WeCom system event's passive reply reaches nobody
        answer = await _store_before_ack(app, inbound, dedup, turn=None)
        if answer is not None:
            answer.add_done_callback(then)
        return success()
    slot = AnswerSlot(joinable=_both_text)  # one passive message carries one reply, or several texts joined
    task = spawn(app, _turn(app, inbound, slot), name=f"wechat-turn-{inbound.channel_msg_id}")
    task.add_done_callback(_log_failure)  # also when the request no longer waits for it
    task.add_done_callback(then)
    await asyncio.wait({task}, timeout=budget)
    if not task.done() and not slot.close():
        await asyncio.wait({task})  # the turn took the passive answer: its commit is moments away
    if not task.done() or task.cancelled() or task.exception() is not None:
        await _store_before_ack(app, inbound, dedup, turn=task)  # the turn's replies (if any) go through the outbox
        return success()
    await confirm_dedup(app, dedup)
    return await _passive_answer(request, inbound, cb, task.result().replies, reply_cipher)


async def _passive_answer(
    request: web.Request, inbound: InboundMessage, cb: Callback, replies: list[Reply], cipher: Cipher | None
) -> web.Response:
    """The replies the turn recorded as answered here, as passive XML; the rest are due in the outbox now."""
    await request.app[outbox_key].release([r.outbox_id for r in replies if r.outbox_id and not r.in_answer])
    passive = [r.payload for r in replies if r.in_answer]
    if not passive:
        return success()
    xml = render_passive(passive, to_user=inbound.external_id, from_user=_text(cb.data, "ToUserName"))
    if cipher is not None:
        xml = cipher.encrypt(xml, request.query.get("nonce") or uuid.uuid4().hex[:10])
    return web.Response(text=xml, content_type="application/xml")


async def _store_before_ack(
    app: web.Application, inbound: InboundMessage, dedup: str, *, turn: asyncio.Task[Any] | None
) -> asyncio.Task[None] | None:
    """Store the message alone before WeChat hears "success" (the unique key settles a race with a
    running `turn`); answers it now when no turn runs or the turn failed. Returns that answering task."""
    if turn is not None and not turn.done():
        log.info("wechat_reply_deferred", key=inbound.channel_msg_id)
    try:
        message, duplicate = await app[engine_key].receive(inbound)
    except Exception:
        await release_dedup(app, dedup)  # not stored: let WeChat's retry in
        raise
    await confirm_dedup(app, dedup)
    if duplicate or message.id is None:
        return None  # stored before: whoever stored it sees it answered
    message_id = message.id

    def answer_if_failed(task: asyncio.Task[Any]) -> None:  # now, not at the recovery job's next run
        if _failed(task):
            spawn(app, _answer_stored(app, message_id), name=f"wechat-retry-{message_id}")

    if turn is None:
        return spawn(app, _answer_stored(app, message_id, message), name=f"wechat-answer-{message_id}")
    if turn.done():
        answer_if_failed(turn)
    else:
        turn.add_done_callback(answer_if_failed)
    return None


def _failed(task: asyncio.Task[Any]) -> bool:
    return not task.cancelled() and task.exception() is not None


def _log_failure(turn: asyncio.Task[Any]) -> None:
    if _failed(turn):
        log.warning("wechat_turn_failed", turn=turn.get_name(), error=repr(turn.exception()))


async def _turn(app: web.Application, inbound: InboundMessage, slot: AnswerSlot) -> Any:
    async with app[turn_slots_key]:
        return await app[engine_key].handle(inbound, slot)


async def _answer_stored(app: web.Application, message_id: int, stored: Message | None = None) -> None:
    try:
        async with app[turn_slots_key]:
            await app[engine_key].process(message_id, stored=stored)  # retries a busy database
    except Exception as exc:  # stored and unanswered: the recovery job answers it
        log.warning("wechat_turn_failed_again", message_id=message_id, error=repr(exc))


def _both_text(first: dict[str, Any], other: dict[str, Any]) -> bool:
    return _text_only(first) and _text_only(other)


def _text_only(payload: dict[str, Any]) -> bool:
    return not payload.get("articles") and not payload.get("image_media_id") and not payload.get("template")


def render_passive(payloads: list[dict[str, Any]], *, to_user: str, from_user: str) -> str:
    """Passive reply XML: a news or image message when the reply is one, else (joined) text."""
    first = payloads[0]
    base = {"ToUserName": to_user, "FromUserName": from_user, "CreateTime": str(int(time.time()))}
    if len(payloads) == 1 and first.get("articles"):
        items = [
            {
                "Title": a.get("title", ""),
                "Description": a.get("description", ""),
                "PicUrl": a.get("picurl", ""),
                "Url": a.get("url", ""),
            }
            for a in first["articles"][:8]
        ]
        return render_xml({**base, "MsgType": "news", "ArticleCount": str(len(items)), "Articles": {"item": items}})
    if len(payloads) == 1 and first.get("image_media_id"):
        return render_xml({**base, "MsgType": "image", "Image": {"MediaId": first["image_media_id"]}})
    content = "\n\n".join(str(p.get("text", "")) for p in payloads).strip()
    return render_xml({**base, "MsgType": "text", "Content": content})


def render_api_message(payload: dict[str, Any]) -> dict[str, Any]:
    """客服消息 / WeCom / 微信客服 JSON for a stored reply: news, image or (numbered) text."""
    if payload.get("articles"):
        article = payload["articles"][0]  # customer-service news carries one article
        return {
            "msgtype": "news",
            "news": {
                "articles": [
                    {
                        "title": article.get("title", ""),
                        "description": article.get("description", ""),
                        "url": article.get("url", ""),
                        "picurl": article.get("picurl", ""),
                    }
                ]
            },
        }
    if payload.get("image_media_id"):
        return {"msgtype": "image", "image": {"media_id": payload["image_media_id"]}}
    return {"msgtype": "text", "text": {"content": str(payload.get("text", ""))}}


class WindowClosed(Exception):
    """More than 48 hours since the customer's last message: customer-service messages are refused (45015)."""


class LimitReached(Exception):
    """This customer message already got as many API replies as the channel allows (45047 / 微信客服 5)."""


reply_counts_key = web.AppKey("wechat_reply_counts", dict)
turn_slots_key = web.AppKey("wechat_turn_slots", asyncio.Semaphore)  # in-process counters when there is no Redis


def init_reply_counts(app: web.Application) -> None:
    """Per-app state of the WeChat channels (called from each channel's setup, before the app starts)."""
    if reply_counts_key not in app:
        app[reply_counts_key] = {}
    if turn_slots_key not in app:
        # SQLite has one writer: a bounded queue of turns beats a convoy on its lock, and a queued turn
        # is cancelled at once at shutdown (it holds no connection yet).
        app[turn_slots_key] = asyncio.Semaphore(4 if app[settings_key].is_sqlite else 32)


async def _last_inbound(app: web.Application, row: OutboxMessage, channel: Channel) -> datetime | None:
    async with app[db_key]() as session:
        identity = (
            await session.exec(
                select(ChannelIdentity).where(
                    ChannelIdentity.channel == channel,
                    ChannelIdentity.app_id == row.app_id,
                    ChannelIdentity.external_id == row.external_id,
                )
            )
        ).first()
    last = identity.last_inbound_at if identity else None
    return aware(last) if last is not None else None


async def _sent_since(app: web.Application, row: OutboxMessage, channel: Channel, since: datetime) -> int:
    async with app[db_key]() as session:
        sent = (
            await session.exec(
                select(func.count())
                .select_from(OutboxMessage)
                .where(
                    OutboxMessage.channel == channel,
                    OutboxMessage.app_id == row.app_id,
                    OutboxMessage.external_id == row.external_id,
                    OutboxMessage.status == OutboxStatus.SENT,
                    OutboxMessage.delivered_via == "api",
                    col(OutboxMessage.sent_at) >= since,
                )
            )
        ).one()
    return int(sent)


async def _bump(app: web.Application, key: str, base: int, delta: int) -> int:
    """Atomically add `delta` to a counter that starts at `base` (Redis across workers, else this process)."""
    redis: Any = _redis(app)
    if redis is not None:
        full = f"{app[settings_key].redis_namespace}:{key}"
        await redis.set(full, base, nx=True, ex=int(WINDOW.total_seconds()))
        return int(await redis.incrby(full, delta))
    counts: dict[str, int] = app[reply_counts_key]
    counts[key] = counts.get(key, base) + delta
    return counts[key]


@contextlib.asynccontextmanager
async def reply_slot(app: web.Application, row: OutboxMessage, channel: Channel, limit: int) -> AsyncIterator[None]:
    """Hold one of the `limit` API replies allowed per customer message while sending (given back on failure).

    The outbox sends rows concurrently, so the count of rows already marked sent is not enough: the
    slot is an atomic counter per (customer, their last message), seeded from that count.
    """
    last = await _last_inbound(app, row, channel)
    if last is None or utcnow() - last >= WINDOW:
        raise WindowClosed()
    key = f"wechat:replies:{channel}:{row.app_id}:{row.external_id}:{int(last.timestamp())}"
    taken = await _bump(app, key, await _sent_since(app, row, channel, last), 1)
    if taken > limit:
        await _bump(app, key, 0, -1)
        raise LimitReached(limit)
    try:
        yield
    except BaseException:
        await _bump(app, key, 0, -1)
        raise


async def link_unionid(app: web.Application, *, channel: Channel, account: str, external_id: str, unionid: str) -> int:
    """Record a unionid on an identity and merge every customer sharing it; returns merges done.

    Retried on a deadlock / lock timeout: the merge moves conversations that a concurrent turn may hold.
    """
    for attempt in range(4):
        try:
            async with transaction(app[db_key]) as session:
                identity = (
                    await session.exec(
                        select(ChannelIdentity).where(
                            ChannelIdentity.channel == channel,
                            ChannelIdentity.app_id == account,
                            ChannelIdentity.external_id == external_id,
                        )
                    )
                ).first()
                if identity is None:
                    return 0
                identity.unionid = unionid[:128]
                session.add(identity)
                await session.flush()
                merged = await merge_by_unionid(session, unionid=identity.unionid, actor=Actor.system(channel.value))
            return len(merged)
        except DBAPIError as exc:
            if attempt == 3:
                raise
            log.info("wechat_unionid_link_retry", error=type(exc.orig).__name__, attempt=attempt + 1)
            await asyncio.sleep(0.1 * (attempt + 1))
    return 0


async def replied_inbound(app: web.Application, row: OutboxMessage) -> Message | None:
    """The customer message (or event) an outbox row answers, if any."""
    if row.message_id is None:
        return None
    async with app[db_key]() as session:
        out = await session.get(Message, row.message_id)
        return await session.get(Message, out.reply_to_id) if out and out.reply_to_id else None
