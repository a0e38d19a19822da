"""A fake WeChat / WeCom API on 127.0.0.1 for tests, benchmarks and demos.

It speaks the real JSON shapes and error codes of the endpoints Huike uses, records every
request it receives, and can be told to fail: the next N calls of an endpoint answer an
errcode (40001, 42001, 45015, 45047, -1 …) or an HTTP 5xx, hang past the client's timeout,
or the whole server is "down". Tokens really expire: `expire_tokens()` makes every issued
token answer 42001, as WeChat does after a refresh elsewhere or after 7200 s.

    async with FakeWeChat() as fake:
        settings = make_settings(..., wechat_api_base=fake.url, wecom_api_base=fake.url)
        ...
        assert fake.calls("/cgi-bin/message/custom/send")[0].json["text"]["content"] == "…"

Run it for a demo: `python -m tests.fakes.wechat_server --port 9100`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request, "Call"], Awaitable[web.StreamResponse]]

ERRMSG = {
    0: "ok",
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40003: "invalid openid",
    40013: "invalid appid",
    40014: "invalid access_token",
    40037: "invalid template_id",
    41001: "access_token missing",
    42001: "access_token expired",
    44002: "empty post data",
    45009: "reach max api daily quota limit",
    45015: "response out of time limit or subscription is canceled",
    45047: "out of response count limit",
    47001: "data format error",
    95001: "send msg count limit",
    95007: "invalid msg token",
}

TOKEN_FREE = {"/cgi-bin/token", "/cgi-bin/gettoken"}


@dataclass
class Call:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    json: dict[str, Any] | None
    form: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)


@dataclass
class Failure:
    errcode: int | None = None  # answer {"errcode": n}
    status: int | None = None  # or an HTTP error status
    hang: float | None = None  # or sleep this long before answering (client timeouts)


class FakeWeChat:
    """Fake https://api.weixin.qq.com + https://qyapi.weixin.qq.com (same paths, one server)."""

    def __init__(self, *, app_id: str = "wx_fake_app", secret: str = "fake-secret", corp_id: str = "ww_fake_corp"):
        self.app_id, self.secret, self.corp_id = app_id, secret, corp_id
        self.requests: list[Call] = []
        self.tokens_issued = 0
        self.down = False
        self._valid_tokens: set[str] = set()
        self._failures: dict[str, deque[Failure]] = defaultdict(deque)
        self.window_closed: set[str] = set()  # openids whose 48-hour window has passed (45015)
        self.users: dict[str, dict[str, Any]] = {}  # openid -> user/info overrides (unionid …)
        self.external_contacts: dict[str, dict[str, Any]] = {}
        self.kf_messages: dict[str, list[dict[str, Any]]] = defaultdict(list)  # open_kfid -> msg_list
        self.kf_states: dict[tuple[str, str], int] = {}
        self.menu: dict[str, Any] | None = None
        self._ids = itertools.count(1000)
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.app = web.Application(client_max_size=20 * 1024 * 1024)
        routes: dict[str, tuple[str, Handler]] = {
            "/cgi-bin/token": ("GET", self._token),
            "/cgi-bin/gettoken": ("GET", self._gettoken),
            "/cgi-bin/message/custom/send": ("POST", self._custom_send),
            "/cgi-bin/message/template/send": ("POST", self._template_send),
            "/cgi-bin/media/upload": ("POST", self._media_upload),
            "/cgi-bin/menu/create": ("POST", self._menu_create),
            "/cgi-bin/user/info": ("GET", self._user_info),
            "/cgi-bin/message/send": ("POST", self._wecom_send),
            "/cgi-bin/kf/sync_msg": ("POST", self._kf_sync),
            "/cgi-bin/kf/send_msg": ("POST", self._kf_send),
            "/cgi-bin/kf/send_msg_on_event": ("POST", self._kf_send_on_event),
            "/cgi-bin/kf/service_state/trans": ("POST", self._kf_trans),
            "/cgi-bin/kf/service_state/get": ("POST", self._kf_state_get),
            "/cgi-bin/externalcontact/get": ("GET", self._external_contact),
            "/cgi-bin/externalcontact/send_welcome_msg": ("POST", self._send_welcome),
        }
        for path, (method, handler) in routes.items():
            self.app.router.add_route(method, path, self._wrap(path, handler))

    # --- control -----------------------------------------------------------------------------

    async def start(self, port: int = 0) -> str:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeWeChat:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def fail(
        self,
        path: str,
        *,
        errcode: int | None = None,
        status: int | None = None,
        hang: float | None = None,
        times: int = 1,
    ) -> None:
        """The next `times` calls of `path` fail this way (then it works again)."""
        for _ in range(times):
            self._failures[path].append(Failure(errcode, status, hang))

    def expire_tokens(self) -> None:
        """Every token issued so far is now expired (42001), as after 7200 s."""
        self._valid_tokens.clear()

    def calls(self, path: str) -> list[Call]:
        return [c for c in self.requests if c.path == path]

    def add_kf_message(self, open_kfid: str, external_userid: str, text: str, **extra: Any) -> dict[str, Any]:
        msg = {
            "msgid": extra.pop("msgid", f"kfmsg{next(self._ids)}"),
            "open_kfid": open_kfid,
            "external_userid": external_userid,
            "send_time": int(time.time()),
            "origin": 3,  # 3 = sent by the WeChat customer
            "msgtype": "text",
            "text": {"content": text},
            **extra,
        }
        self.kf_messages[open_kfid].append(msg)
        return msg

    # --- plumbing ----------------------------------------------------------------------------

    def _wrap(self, path: str, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def endpoint(request: web.Request) -> web.StreamResponse:
            body: dict[str, Any] | None = None
            form: dict[str, Any] = {}
            if request.content_type == "multipart/form-data":
                post = await request.post()
                form = {k: getattr(v, "filename", v) for k, v in post.items()}
            elif request.can_read_body:
                raw = await request.read()
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    return _err(47001)
            call = Call(request.method, path, dict(request.query), body, form)
            self.requests.append(call)
            if self.down:
                return web.Response(status=503, text="service unavailable")
            queue = self._failures.get(path)
            if queue:
                failure = queue.popleft()
                if failure.hang:
                    await asyncio.sleep(failure.hang)
                if failure.status:
                    return web.Response(status=failure.status, text="upstream error")
                if failure.errcode is not None:
                    return _err(failure.errcode)
            if path not in TOKEN_FREE:
                token = request.query.get("access_token")
                if not token:
                    return _err(41001)
                if token not in self._valid_tokens:
                    return _err(42001 if token.startswith("FAKE") else 40001)
            return await handler(request, call)

        return endpoint

    def _issue(self) -> web.Response:
        self.tokens_issued += 1
        token = f"FAKE{self.tokens_issued}_{uuid.uuid4().hex}"
        self._valid_tokens.add(token)
        return web.json_response({"access_token": token, "expires_in": 7200})

    # --- Official Account --------------------------------------------------------------------

    async def _token(self, request: web.Request, call: Call) -> web.StreamResponse:
        q = request.query
        if q.get("grant_type") != "client_credential":
            return _err(40002)
        if q.get("appid") != self.app_id:
            return _err(40013)
        if q.get("secret") != self.secret:
            return _err(40001)
        return self._issue()

    async def _custom_send(self, request: web.Request, call: Call) -> web.StreamResponse:
        body = call.json or {}
        if not body.get("touser") or body.get("msgtype") not in (
            "text",
            "image",
            "news",
            "voice",
            "video",
            "music",
            "mpnews",
            "msgmenu",
            "wxcard",
            "miniprogrampage",
        ):
            return _err(47001)
        if body["touser"] in self.window_closed:
            return _err(45015)
        return _err(0)

    async def _template_send(self, request: web.Request, call: Call) -> web.StreamResponse:
        body = call.json or {}
        if not body.get("touser") or not body.get("template_id") or not isinstance(body.get("data"), dict):
            return _err(47001)
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": next(self._ids)})

    async def _media_upload(self, request: web.Request, call: Call) -> web.StreamResponse:
        kind = request.query.get("type", "")
        if kind not in ("image", "voice", "video", "thumb", "file") or "media" not in call.form:
            return _err(40004 if kind else 47001)
        return web.json_response({"type": kind, "media_id": f"MEDIA_{next(self._ids)}", "created_at": int(time.time())})

    async def _menu_create(self, request: web.Request, call: Call) -> web.StreamResponse:
        body = call.json or {}
        buttons = body.get("button")
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
            return _err(40016)  # invalid button size
        self.menu = body
        return _err(0)

    async def _user_info(self, request: web.Request, call: Call) -> web.StreamResponse:
        openid = request.query.get("openid", "")
        if not openid:
            return _err(40003)
        info = {
            "subscribe": 1,
            "openid": openid,
            "language": "zh_CN",
            "subscribe_time": int(time.time()),
            "remark": "",
            "groupid": 0,
            "tagid_list": [],
            "subscribe_scene": "ADD_SCENE_QR_CODE",
            "qr_scene": 0,
            "qr_scene_str": "",
        }
        info.update(self.users.get(openid, {}))
        return web.json_response(info)

    # --- WeCom -------------------------------------------------------------------------------

    async def _gettoken(self, request: web.Request, call: Call) -> web.StreamResponse:
        if request.query.get("corpid") != self.corp_id:
            return _err(40013)
        if not request.query.get("corpsecret"):
            return _err(40001)
        resp = self._issue()
        data = json.loads(resp.text or "{}")
        return web.json_response({"errcode": 0, "errmsg": "ok", **data})

    async def _wecom_send(self, request: web.Request, call: Call) -> web.StreamResponse:
        body = call.json or {}
        if not body.get("msgtype") or not body.get("agentid"):
            return _err(47001)
        return web.json_response({"errcode": 0, "errmsg": "ok", "invaliduser": "", "msgid": f"wcmsg{next(self._ids)}"})

    async def _kf_sync(self, request: web.Request, call: Call) -> web.StreamResponse:
        body = call.json or {}
        open_kfid = body.get("open_kfid", "")
        limit = max(1, min(int(body.get("limit") or 1000), 1000))
        start = int(body.get("cursor") or 0)
        msgs = self.kf_messages.get(open_kfid, [])
        page = msgs[start : start + limit]
        nxt = start + len(page)
        return web.json_response(
            {
                "errcode": 0,
                "errmsg": "ok",
                "next_cursor": str(nxt),
                "has_more": int(nxt < len(msgs)),
                "msg_list": page,
            }
        )

    async def _kf_send(self, request: web.Request, call: Call) -> web.StreamResponse:
        body = call.json or {}
        if not body.get("touser") or not body.get("open_kfid") or not body.get("msgtype"):
            return _err(47001)
        if body["touser"] in self.window_closed:
            return _err(95001)
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": f"kfout{next(self._ids)}"})

    async def _kf_send_on_event(self, request: web.Request, call: Call) -> web.StreamResponse:
        body = call.json or {}
        if not body.get("code") or not body.get("msgtype"):
            return _err(47001)
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": f"kfwelcome{next(self._ids)}"})

    async def _kf_trans(self, request: web.Request, call: Call) -> web.StreamResponse:
        body = call.json or {}
        key = (body.get("open_kfid", ""), body.get("external_userid", ""))
        if not all(key) or body.get("service_state") not in (0, 1, 2, 3, 4):
            return _err(47001)
        self.kf_states[key] = int(body["service_state"])
        return web.json_response({"errcode": 0, "errmsg": "ok", "msg_code": f"MSGCODE{next(self._ids)}"})

    async def _kf_state_get(self, request: web.Request, call: Call) -> web.StreamResponse:
        body = call.json or {}
        state = self.kf_states.get((body.get("open_kfid", ""), body.get("external_userid", "")), 0)
        return web.json_response({"errcode": 0, "errmsg": "ok", "service_state": state, "servicer_userid": ""})

    async def _send_welcome(self, request: web.Request, call: Call) -> web.StreamResponse:
        body = call.json or {}
        if not body.get("welcome_code"):
            return _err(41051)  # invalid welcome_code
        return _err(0)

    async def _external_contact(self, request: web.Request, call: Call) -> web.StreamResponse:
        external_userid = request.query.get("external_userid", "")
        contact = self.external_contacts.get(external_userid)
        if contact is None:
            return _err(84061)  # not external contact
        return web.json_response({"errcode": 0, "errmsg": "ok", **contact})


def _err(code: int) -> web.Response:
    return web.json_response({"errcode": code, "errmsg": ERRMSG.get(code, "error")})


async def _serve(port: int) -> None:
    fake = FakeWeChat()
    url = await fake.start(port)
    print(f"fake WeChat API on {url} (appid {fake.app_id}, secret {fake.secret}, corpid {fake.corp_id})")
    try:
        await asyncio.Event().wait()
    finally:
        await fake.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=9100)
    asyncio.run(_serve(parser.parse_args().port))
