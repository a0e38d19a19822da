"""WeChat Official Account (公众号): callback at /channels/wechat/{account}, delivery through 客服消息.

Plaintext, compatible and safe (AES) modes: the URL `signature` is checked on every request, and
when WeChat says `encrypt_type=aes` the envelope's `msg_signature`, ciphertext and AppId are too.
The reply is passive (encrypted when the request was) when the engine answers within the budget,
otherwise "success" and the outbox sends it through the customer-service API, within WeChat's
48-hour window, falling back to a template message after 45015 when one is configured.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from aiohttp import web

from bot.channels.wechat_api import WeChatApiError, WeChatClient, WeChatUnavailable
from bot.channels.wechat_common import (
    Account,
    CallbackRejected,
    LimitReached,
    WindowClosed,
    account_of,
    cached_client,
    check_timestamp,
    handle_message,
    init_reply_counts,
    link_unionid,
    open_envelope,
    parse_callback,
    read_body,
    refuse_reused_signature,
    rejected,
    render_api_message,
    reply_slot,
    safe_xml_dict,
    verify_signature,
)
from bot.keys import http_key, outbox_key, settings_key
from bot.messages import Channel, InboundMessage
from bot.outbox import GiveUp, RetryLater
from config.settings import Settings
from models import OutboxMessage

log = structlog.get_logger(__name__)
clients_key = web.AppKey("wechat_oa_clients", dict)


DEMO_TOKEN = "huike-demo-token"  # dev only: lets `make run` + `huike wechat simulate` work out of the box


def callback_token(settings: Settings) -> str:
    """HUIKE_WECHAT_TOKEN; in the dev environment a demo token when unset (never in test/production)."""
    return settings.wechat_token or (DEMO_TOKEN if settings.env == "dev" else "")


def accounts(settings: Settings) -> dict[str, Account]:
    """Configured Official Accounts; `default` comes from the HUIKE_WECHAT_* environment."""
    token = callback_token(settings)
    if not token:
        return {}
    return {
        "default": Account(
            channel=Channel.WECHAT_OA,
            name="default",
            token=token,
            receive_id=settings.wechat_app_id,
            aes_key=settings.wechat_aes_key.get_secret_value(),
        )
    }


def client(app: web.Application, account: str) -> WeChatClient:
    """The API client of an account (one per app: they share the token store)."""
    settings = app[settings_key]
    return cached_client(app, clients_key, account, lambda store: WeChatClient(
        app[http_key],
        app_id=settings.wechat_app_id,
        secret=settings.wechat_app_secret.get_secret_value(),
        base_url=settings.wechat_api_base,
        store=store,
        timeout=settings.wechat_api_timeout,
    ))  # fmt: skip


def _account(request: web.Request) -> Account:
    return account_of(request, accounts(request.app[settings_key]))


# --- callback ---------------------------------------------------------------------------------


async def verify_url(request: web.Request) -> web.Response:
    """GET: WeChat checks the URL with a signed echostr, which we hand back unchanged."""
    account = _account(request)
    q = request.query
    try:
        verify_signature(q.get("signature"), account.token, q.get("timestamp", ""), q.get("nonce", ""))
    except CallbackRejected as exc:
        return rejected(request, exc, account.name)
    return web.Response(text=q.get("echostr", ""), content_type="text/plain")


async def callback(request: web.Request) -> web.Response:
    started = time.monotonic()
    account = _account(request)
    q = request.query
    timestamp, nonce = q.get("timestamp", ""), q.get("nonce", "")
    try:
        check_timestamp(timestamp, request.app[settings_key].wechat_replay_window)
        verify_signature(q.get("signature"), account.token, timestamp, nonce)
        body = await read_body(request)
        await refuse_reused_signature(request.app, account, timestamp, nonce, body)
        cipher = None
        if q.get("encrypt_type", "raw").lower() == "aes":
            cipher = account.cipher
            if cipher is None:
                raise CallbackRejected(400, "encrypted callback but no EncodingAESKey configured")
            cb = open_envelope(
                safe_xml_dict(body), cipher, msg_signature=q.get("msg_signature"), timestamp=timestamp, nonce=nonce
            )
        else:
            cb = parse_callback(body, wecom=False)
    except CallbackRejected as exc:
        return rejected(request, exc, account.name)
    return await handle_message(
        request, account, cb, reply_cipher=cipher, started=started, after_turn=_after_turn
    )


async def _after_turn(app: web.Application, inbound: InboundMessage) -> None:
    if (inbound.event or "").lower() == "subscribe" and app[settings_key].wechat_app_secret.get_secret_value():
        await enrich_follower(app, inbound.account, inbound.external_id)


async def enrich_follower(app: web.Application, account: str, openid: str) -> None:
    """A new follower's unionid (user/info) joins them with the same person on WeCom / other accounts."""
    try:
        info = await client(app, account).user_info(openid)
    except (WeChatApiError, WeChatUnavailable) as exc:
        log.warning("wechat_user_info_failed", openid=openid, error=str(exc))
        return
    unionid = info.get("unionid")
    if not unionid:
        return
    merged = await link_unionid(
        app, channel=Channel.WECHAT_OA, account=account, external_id=openid, unionid=str(unionid)
    )
    log.info("wechat_follower_enriched", openid=openid, merged=merged)


# --- delivery ---------------------------------------------------------------------------------


def make_deliverer(app: web.Application) -> Any:
    async def deliver(row: OutboxMessage) -> str:
        settings = app[settings_key]
        api = client(app, row.app_id)
        payload = row.payload
        try:
            if payload.get("template"):
                return await _send_template(api, row, payload["template"])
            try:
                async with reply_slot(app, row, Channel.WECHAT_OA, settings.wechat_max_api_replies):
                    await api.send_custom(row.external_id, render_api_message(payload))
            except WindowClosed:
                return await _fallback(app, api, row, "超过48小时客服消息时限")
            except LimitReached as exc:
                raise GiveUp(f"45047 已达客服消息条数上限（{exc.args[0]} 条），等待客户再次发言") from exc
            return "api"
        except WeChatApiError as exc:
            if exc.errcode == 45015:
                return await _fallback(app, api, row, "45015 超过48小时客服消息时限")
            if exc.errcode == 45047:
                raise GiveUp(f"45047 已达客服消息条数上限: {exc.errmsg}") from exc
            if exc.transient:
                raise RetryLater(str(exc)) from exc
            raise GiveUp(str(exc)) from exc
        except WeChatUnavailable as exc:
            raise RetryLater(str(exc)) from exc

    return deliver


async def _send_template(api: WeChatClient, row: OutboxMessage, template: dict[str, Any]) -> str:
    await api.send_template(
        row.external_id,
        str(template.get("id") or template.get("template_id")),
        template.get("data") or {},
        url=template.get("url"),
    )
    return "template"


async def _fallback(app: web.Application, api: WeChatClient, row: OutboxMessage, reason: str) -> str:
    """Outside the 48-hour window only a template message may reach the customer, if one is configured."""
    template_id = app[settings_key].wechat_fallback_template_id
    if not template_id:
        raise GiveUp(f"{reason}，且未配置模板消息（HUIKE_WECHAT_FALLBACK_TEMPLATE_ID），无法送达")
    text = str(row.payload.get("text", ""))
    data = {
        "first": {"value": "您的咨询有了新的回复"},
        "keyword1": {"value": text[:200]},
        "remark": {"value": "回复本公众号即可继续咨询"},
    }
    try:
        return await _send_template(api, row, {"id": template_id, "data": data})
    except WeChatUnavailable as exc:
        raise RetryLater(str(exc)) from exc
    except WeChatApiError as exc:
        if exc.transient:
            raise RetryLater(str(exc)) from exc
        raise GiveUp(f"{reason}；模板消息也失败: {exc}") from exc


def setup(app: web.Application) -> None:
    app[clients_key] = {}
    init_reply_counts(app)
    app.router.add_get("/channels/wechat/{account}", verify_url)
    app.router.add_post("/channels/wechat/{account}", callback)
    app[outbox_key].register(
        Channel.WECHAT_OA, make_deliverer(app), hold_seconds=app[settings_key].wechat_reply_budget + 1.0
    )
