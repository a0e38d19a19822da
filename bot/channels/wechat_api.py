"""Async client for the WeChat Official Account and WeCom APIs, with one shared access_token.

wechatpy's own client is synchronous, so the calls are made here with aiohttp. The
access_token is the delicate part: fetching a new one invalidates the previous one for every
worker, so it is cached where all workers see it (Redis when configured, the process
otherwise), refreshed before it expires by exactly one worker holding a lock, and refreshed
again only when WeChat says the token we used is invalid (40001 / 42001 / 40014) — and only if
nobody has replaced that very token meanwhile. It is never fetched per request.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import structlog

log = structlog.get_logger(__name__)

TOKEN_ERRORS = frozenset({40001, 40014, 42001})
REFRESH_MARGIN = 300.0  # seconds before expiry at which the token is renewed
LOCK_TTL_MS = 10_000
LOCK_WAIT = 12.0


class WeChatApiError(Exception):
    """WeChat answered with a non-zero errcode (the request reached WeChat and was refused)."""

    def __init__(self, errcode: int, errmsg: str = "", path: str = "") -> None:
        super().__init__(f"{path}: errcode {errcode} {errmsg}".strip())
        self.errcode = errcode
        self.errmsg = errmsg
        self.path = path

    @property
    def transient(self) -> bool:
        """-1 (system busy) and 45009 / 45011 (rate limits) pass if we wait."""
        return self.errcode in (-1, 45009, 45011)


class WeChatUnavailable(Exception):
    """Network error, timeout or HTTP 5xx: WeChat may not have seen the request; retry later."""


# --- token storage -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CachedToken:
    token: str
    expires_at: float

    def fresh(self, now: float) -> bool:
        return self.expires_at - now > REFRESH_MARGIN


class TokenStore(Protocol):
    async def read(self, key: str) -> CachedToken | None: ...

    async def write(self, key: str, token: CachedToken) -> None: ...

    def lock(self, key: str) -> Any: ...  # async context manager: held by one worker at a time


class MemoryTokenStore:
    """In-process cache for the embedded default (one process, no Redis)."""

    def __init__(self) -> None:
        self._tokens: dict[str, CachedToken] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def read(self, key: str) -> CachedToken | None:
        return self._tokens.get(key)

    async def write(self, key: str, token: CachedToken) -> None:
        self._tokens[key] = token

    @asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[None]:
        async with self._locks.setdefault(key, asyncio.Lock()):
            yield


_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class RedisTokenStore:
    """Token shared by every worker; the refresh lock is a Redis SET NX PX with an owner check on release."""

    def __init__(self, redis: Any, namespace: str) -> None:
        self.redis = redis
        self.namespace = namespace

    def _key(self, key: str) -> str:
        return f"{self.namespace}:wechat:token:{key}"

    async def read(self, key: str) -> CachedToken | None:
        raw = await self.redis.get(self._key(key))
        if not raw:
            return None
        data = json.loads(raw)
        return CachedToken(data["token"], float(data["expires_at"]))

    async def write(self, key: str, token: CachedToken) -> None:
        ttl_ms = max(1000, int((token.expires_at - time.time()) * 1000))
        payload = json.dumps({"token": token.token, "expires_at": token.expires_at})
        await self.redis.set(self._key(key), payload, px=ttl_ms)

    @asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[None]:
        lock_key, owner = self._key(key) + ":lock", uuid.uuid4().hex
        deadline = time.monotonic() + LOCK_WAIT
        while not await self.redis.set(lock_key, owner, nx=True, px=LOCK_TTL_MS):
            if time.monotonic() > deadline:
                raise WeChatUnavailable("timed out waiting for the access_token refresh lock")
            await asyncio.sleep(0.05)
        try:
            yield
        finally:
            await self.redis.eval(_RELEASE, 1, lock_key, owner)


def token_store(redis: Any | None, namespace: str) -> TokenStore:
    return RedisTokenStore(redis, namespace) if redis is not None else MemoryTokenStore()


# --- client ------------------------------------------------------------------------------------


class _BaseClient:
    """Token handling and the request/response conventions shared by WeChat and WeCom."""

    token_path = ""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        base_url: str,
        store: TokenStore,
        cache_key: str,
        timeout: float = 5.0,
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.store = store
        self.cache_key = cache_key
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.token_fetches = 0  # how often this client asked WeChat for a token (tests, metrics)

    def _token_params(self) -> dict[str, str]:
        raise NotImplementedError

    async def access_token(self, *, stale: str | None = None) -> str:
        """The shared token; `stale` is one WeChat just refused, which must not be handed out again."""
        now = time.time()
        cached = await self.store.read(self.cache_key)
        if cached and cached.fresh(now) and cached.token != stale:
            return cached.token
        async with self.store.lock(self.cache_key):
            cached = await self.store.read(self.cache_key)  # another worker may have renewed it
            if cached and cached.fresh(time.time()) and cached.token != stale:
                return cached.token
            data = await self._call("GET", self.token_path, params=self._token_params())
            self.token_fetches += 1
            token = CachedToken(str(data["access_token"]), time.time() + float(data.get("expires_in", 7200)))
            await self.store.write(self.cache_key, token)
            log.info("wechat_token_refreshed", key=self.cache_key, stale=bool(stale))
            return token.token

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json_body: dict[str, Any] | None = None,
        data: Any = None,
    ) -> dict[str, Any]:
        """Call an API with the shared token; on 40001/42001/40014 refresh once and retry once."""
        token = await self.access_token()
        try:
            return await self._call(
                method, path, params={**(params or {}), "access_token": token}, json_body=json_body, data=data
            )
        except WeChatApiError as exc:
            if exc.errcode not in TOKEN_ERRORS:
                raise
            log.warning("wechat_token_rejected", path=path, errcode=exc.errcode)
        token = await self.access_token(stale=token)
        return await self._call(
            method, path, params={**(params or {}), "access_token": token}, json_body=json_body, data=data
        )

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json_body: dict[str, Any] | None = None,
        data: Any = None,
    ) -> dict[str, Any]:
        url = self.base_url + path
        body = None if json_body is None else json.dumps(json_body, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8"} if body is not None else None
        try:
            async with self.http.request(
                method,
                url,
                params=params,
                data=body if body is not None else data,
                headers=headers,
                timeout=self.timeout,
            ) as resp:
                if resp.status >= 500:
                    raise WeChatUnavailable(f"{path}: HTTP {resp.status}")
                if resp.status >= 400:
                    raise WeChatApiError(-resp.status, f"HTTP {resp.status}", path)
                payload = json.loads(await resp.read())
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise WeChatUnavailable(f"{path}: {type(exc).__name__}: {exc}") from exc
        if not isinstance(payload, dict):
            raise WeChatUnavailable(f"{path}: unexpected response")
        errcode = int(payload.get("errcode") or 0)
        if errcode != 0:
            raise WeChatApiError(errcode, str(payload.get("errmsg", "")), path)
        return payload


class WeChatClient(_BaseClient):
    """Official Account (公众号) API."""

    token_path = "/cgi-bin/token"

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        app_id: str,
        secret: str,
        base_url: str,
        store: TokenStore,
        timeout: float = 5.0,
    ) -> None:
        super().__init__(http, base_url=base_url, store=store, cache_key=f"oa:{app_id}", timeout=timeout)
        self.app_id, self.secret = app_id, secret

    def _token_params(self) -> dict[str, str]:
        return {"grant_type": "client_credential", "appid": self.app_id, "secret": self.secret}

    async def send_custom(self, openid: str, message: dict[str, Any]) -> dict[str, Any]:
        """客服消息: `message` is {"msgtype": "text", "text": {"content": …}} and the like."""
        return await self.request("POST", "/cgi-bin/message/custom/send", json_body={"touser": openid, **message})

    async def send_template(
        self, openid: str, template_id: str, data: dict[str, Any], url: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"touser": openid, "template_id": template_id, "data": data}
        if url:
            body["url"] = url
        return await self.request("POST", "/cgi-bin/message/template/send", json_body=body)

    async def upload_media(self, media_type: str, filename: str, content: bytes) -> str:
        form = aiohttp.FormData()
        form.add_field("media", content, filename=filename)
        result = await self.request("POST", "/cgi-bin/media/upload", params={"type": media_type}, data=form)
        return str(result["media_id"])

    async def create_menu(self, menu: dict[str, Any]) -> dict[str, Any]:
        return await self.request("POST", "/cgi-bin/menu/create", json_body=menu)

    async def user_info(self, openid: str) -> dict[str, Any]:
        return await self.request("GET", "/cgi-bin/user/info", params={"openid": openid, "lang": "zh_CN"})


class WeComClient(_BaseClient):
    """WeCom (企业微信) application, external contacts and 微信客服 APIs."""

    token_path = "/cgi-bin/gettoken"

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        corp_id: str,
        secret: str,
        base_url: str,
        store: TokenStore,
        agent_id: str = "",
        timeout: float = 5.0,
    ) -> None:
        super().__init__(http, base_url=base_url, store=store, cache_key=f"wecom:{corp_id}:{agent_id}", timeout=timeout)
        self.corp_id, self.secret, self.agent_id = corp_id, secret, agent_id

    def _token_params(self) -> dict[str, str]:
        return {"corpid": self.corp_id, "corpsecret": self.secret}

    async def send_app_message(self, touser: str, message: dict[str, Any]) -> dict[str, Any]:
        body = {"touser": touser, "agentid": int(self.agent_id or 0), **message}
        return await self.request("POST", "/cgi-bin/message/send", json_body=body)

    async def kf_sync_msg(
        self, *, open_kfid: str, cursor: str = "", token: str = "", limit: int = 1000
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"open_kfid": open_kfid, "limit": limit, "voice_format": 0}
        if cursor:
            body["cursor"] = cursor
        if token:
            body["token"] = token
        return await self.request("POST", "/cgi-bin/kf/sync_msg", json_body=body)

    async def kf_send_msg(self, *, open_kfid: str, external_userid: str, message: dict[str, Any]) -> dict[str, Any]:
        body = {"touser": external_userid, "open_kfid": open_kfid, **message}
        return await self.request("POST", "/cgi-bin/kf/send_msg", json_body=body)

    async def kf_trans(
        self, *, open_kfid: str, external_userid: str, service_state: int, servicer_userid: str = ""
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "open_kfid": open_kfid,
            "external_userid": external_userid,
            "service_state": service_state,
        }
        if servicer_userid:
            body["servicer_userid"] = servicer_userid
        return await self.request("POST", "/cgi-bin/kf/service_state/trans", json_body=body)

    async def external_contact(self, external_userid: str) -> dict[str, Any]:
        return await self.request("GET", "/cgi-bin/externalcontact/get", params={"external_userid": external_userid})
