"""WeCom (企业微信): application callback at /channels/wecom/{account}, always encrypted.

Messages from members reach the same engine as Official Account ones; external-contact events
(add/edit/del_external_contact, del_follow_user) keep the customer's identity and follow user up
to date, and the customer is merged with their Official Account self when the unionid matches.
`kf_msg_or_event` (微信客服) carries no message: it starts a `kf/sync_msg` pull (bot.channels.wechat_kf).
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from aiohttp import web

from bot.channels.wechat_api import WeChatApiError, WeChatUnavailable, WeComClient
from bot.channels.wechat_common import (
    Account,
    CallbackRejected,
    account_of,
    cached_client,
    check_timestamp,
    handle_message,
    init_reply_counts,
    link_unionid,
    open_envelope,
    read_body,
    rejected,
    render_api_message,
    replied_inbound,
    safe_xml_dict,
    success,
)
from bot.keys import http_key, outbox_key, settings_key, spawn
from bot.messages import Channel, InboundMessage
from bot.outbox import GiveUp, RetryLater
from config.settings import Settings
from models import OutboxMessage

log = structlog.get_logger(__name__)
clients_key = web.AppKey("wecom_clients", dict)
EXTERNAL_PREFIXES = ("wm", "wo")  # external_userid of WeChat users (members have plain userids)


def accounts(settings: Settings) -> dict[str, Account]:
    """Configured WeCom applications; `default` comes from the HUIKE_WECOM_* environment."""
    if not settings.wecom_token or not settings.wecom_aes_key.get_secret_value():
        return {}
    return {
        "default": Account(
            channel=Channel.WECOM,
            name="default",
            token=settings.wecom_token,
            receive_id=settings.wecom_corp_id,
            aes_key=settings.wecom_aes_key.get_secret_value(),
        )
    }


def client(app: web.Application, account: str = "default") -> WeComClient:
    settings = app[settings_key]
    return cached_client(app, clients_key, account, lambda store: WeComClient(
        app[http_key],
        corp_id=settings.wecom_corp_id,
        secret=settings.wecom_secret.get_secret_value(),
        agent_id=settings.wecom_agent_id,
        base_url=settings.wecom_api_base,
        store=store,
        timeout=settings.wechat_api_timeout,
    ))  # fmt: skip


def _account(request: web.Request) -> Account:
    return account_of(request, accounts(request.app[settings_key]))


async def verify_url(request: web.Request) -> web.Response:
    """GET: WeCom sends an encrypted echostr; we answer its plaintext if the signature and CorpId hold."""
    account = _account(request)
    q = request.query
    cipher = account.cipher
    assert cipher is not None  # accounts() only lists WeCom apps with an EncodingAESKey
    try:
        check_timestamp(q.get("timestamp"), request.app[settings_key].wechat_replay_window)
        echo = cipher.decrypt(q.get("echostr", ""), q.get("msg_signature"), q.get("timestamp", ""), q.get("nonce", ""))
    except CallbackRejected as exc:
        return rejected(request, exc, account.name)
    return web.Response(text=echo, content_type="text/plain")


async def callback(request: web.Request) -> web.Response:
    started = time.monotonic()
    account = _account(request)
    q = request.query
    cipher = account.cipher
    assert cipher is not None
    try:
        check_timestamp(q.get("timestamp"), request.app[settings_key].wechat_replay_window)
        body = await read_body(request)
        cb = open_envelope(
            safe_xml_dict(body),
            cipher,
            msg_signature=q.get("msg_signature"),
            timestamp=q.get("timestamp", ""),
            nonce=q.get("nonce", ""),
        )
    except CallbackRejected as exc:
        return rejected(request, exc, account.name)
    if str(cb.data.get("Event", "")).lower() == "kf_msg_or_event":
        open_kfid, token = str(cb.data.get("OpenKfId") or ""), str(cb.data.get("Token") or "")
        if open_kfid:
            from bot.channels.wechat_kf import sync  # kf builds on this module's client

            spawn(request.app, sync(request.app, account.name, open_kfid, token), name="kf-sync")
        return success()  # the messages themselves are pulled with kf/sync_msg
    return await handle_message(
        request, account, cb, reply_cipher=cipher, started=started, after_turn=_after_turn
    )


async def _after_turn(app: web.Application, inbound: InboundMessage) -> None:
    if inbound.event == "add_external_contact" and app[settings_key].wecom_secret.get_secret_value():
        await enrich_contact(app, inbound.account, inbound.external_id)


async def enrich_contact(app: web.Application, account: str, external_userid: str) -> None:
    """externalcontact/get gives the unionid, which merges this contact with their Official Account self."""
    try:
        info = await client(app, account).external_contact(external_userid)
    except (WeChatApiError, WeChatUnavailable) as exc:
        log.warning("wecom_external_contact_failed", external_userid=external_userid, error=str(exc))
        return
    unionid = (info.get("external_contact") or {}).get("unionid")
    if not unionid:
        return
    merged = await link_unionid(
        app, channel=Channel.WECOM, account=account, external_id=external_userid, unionid=str(unionid)
    )
    log.info("wecom_contact_enriched", external_userid=external_userid, merged=merged)


def make_deliverer(app: web.Application) -> Any:
    async def deliver(row: OutboxMessage) -> str:
        api = client(app, row.app_id)
        message = render_api_message(row.payload)
        try:
            if row.external_id.startswith(EXTERNAL_PREFIXES):
                inbound = await replied_inbound(app, row)
                code = (inbound.payload.get("welcome_code") if inbound else "") or ""
                if not code or message["msgtype"] != "text":
                    # An app cannot push to an external contact; only the welcome (with its code) can.
                    raise GiveUp("企业微信外部联系人不支持应用主动推送，请由跟进员工在企业微信中回复")
                await api.request("POST", "/cgi-bin/externalcontact/send_welcome_msg",
                                  json_body={"welcome_code": code, "text": message["text"]})  # fmt: skip
                return "api"
            await api.send_app_message(row.external_id, message)
        except WeChatApiError as exc:
            if exc.transient:
                raise RetryLater(str(exc)) from exc
            raise GiveUp(str(exc)) from exc
        except WeChatUnavailable as exc:
            raise RetryLater(str(exc)) from exc
        return "api"

    return deliver


def setup(app: web.Application) -> None:
    app[clients_key] = {}
    init_reply_counts(app)
    app.router.add_get("/channels/wecom/{account}", verify_url)
    app.router.add_post("/channels/wecom/{account}", callback)
    app[outbox_key].register(
        Channel.WECOM, make_deliverer(app), hold_seconds=app[settings_key].wechat_reply_budget + 1.0
    )
    from bot.channels.wechat_kf import setup as setup_kf  # kf builds on this module's client

    setup_kf(app)
