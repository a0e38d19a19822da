"""Hostile input over HTTP against a real app: web-chat JSON/WebSocket frames and signed WeChat callbacks.

The app runs on a loopback port in its own event-loop thread so hypothesis can drive it with plain
synchronous requests (and shrink failures). Every answer must be a deliberate 2xx/4xx — never a 5xx.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from bot.channels.wechat_common import Cipher, render_xml, safe_xml_dict, sign
from config.settings import Settings
from scrm.db import SessionFactory
from tests.conftest import make_settings
from tests.fuzz.conftest import FUZZ
from tests.fuzz.test_fuzz_wechat_parse import AES_KEY, APP_ID, TOKEN, callback_fields, xml_of

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=300),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=5),
    max_leaves=20,
)
webchat_bodies = st.fixed_dictionaries(
    {},
    optional={
        "text": json_values | st.text(max_size=3000),
        "client_msg_id": json_values | st.text(max_size=80) | st.from_regex(r"^[\w\-:.]{1,64}$", fullmatch=True),
    },
) | json_values


class LiveApp:
    """create_app(settings) served by aiohttp on 127.0.0.1 in a background thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.url = ""
        self.runner: web.AppRunner | None = None
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> LiveApp:
        from bot.app import create_app

        self.thread.start()

        async def start() -> str:
            self.runner = web.AppRunner(create_app(self.settings), access_log=None)
            await self.runner.setup()
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            await site.start()
            return f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]

        self.url = asyncio.run_coroutine_threadsafe(start(), self.loop).result(300)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def live(
    database_url: str, tmp_path: Path, db: SessionFactory, nlu_model_path: Path
) -> Iterator[tuple[LiveApp, httpx.Client]]:
    wechat = make_settings(database_url, tmp_path, nlu_model_path=nlu_model_path, wechat_token=TOKEN,
                           wechat_app_id=APP_ID, wechat_aes_key=AES_KEY, wechat_reply_budget=0.0,
                           # thousands of examples from one address: fuzz the engine, not the rate limit
                           webchat_messages_per_visitor=10**6, webchat_messages_per_address=10**6)  # fmt: skip
    with LiveApp(wechat) as app, httpx.Client(base_url=app.url, timeout=30) as client:
        yield app, client


def no_server_error(resp: httpx.Response) -> None:
    assert resp.status_code < 500, (resp.status_code, resp.text[:300])


@FUZZ
@given(body=webchat_bodies)
def test_webchat_json_never_500(live: tuple[LiveApp, httpx.Client], body: Any) -> None:
    _app, client = live
    resp = client.post("/api/v1/webchat/messages", json=body)
    no_server_error(resp)
    if resp.status_code >= 400:
        assert set(resp.json()) >= {"code", "message"}  # a JSON error, not a stack trace


@FUZZ
@given(raw=st.binary(max_size=2048), content_type=st.sampled_from(["application/json", "text/plain", "", "x/y"]))
def test_webchat_raw_bytes_never_500(live: tuple[LiveApp, httpx.Client], raw: bytes, content_type: str) -> None:
    _app, client = live
    no_server_error(client.post("/api/v1/webchat/messages", content=raw, headers={"Content-Type": content_type}))


@FUZZ
@given(after=st.text(max_size=30))
def test_webchat_history_query_never_500(live: tuple[LiveApp, httpx.Client], after: str) -> None:
    _app, client = live
    no_server_error(client.get("/api/v1/webchat/messages", params={"after": after}))


@FUZZ
@given(fields=callback_fields(), encrypted=st.booleans())
def test_signed_wechat_callbacks_never_500(
    live: tuple[LiveApp, httpx.Client], fields: dict[str, object], encrypted: bool
) -> None:
    """Correctly signed (so they pass the gate) but hostile callbacks: plain and AES."""
    _app, client = live
    ts, nonce = str(int(time.time())), uuid.uuid4().hex[:10]
    xml = xml_of(fields)
    query = {"timestamp": ts, "nonce": nonce, "signature": sign(TOKEN, ts, nonce)}
    if encrypted:
        env = safe_xml_dict(Cipher(TOKEN, AES_KEY, APP_ID).encrypt(xml, nonce, ts))
        body = render_xml({"ToUserName": "gh", "Encrypt": env["Encrypt"]}).encode()
        query |= {"encrypt_type": "aes", "msg_signature": str(env["MsgSignature"])}
    else:
        body = xml.encode("utf-8", "surrogatepass")
    resp = client.post(f"/channels/wechat/default?{urlencode(query)}", content=body)
    no_server_error(resp)


@FUZZ
@given(query=st.dictionaries(st.sampled_from(["timestamp", "nonce", "signature", "msg_signature", "encrypt_type",
                                              "echostr", "openid"]),
                             st.text(alphabet=st.characters(max_codepoint=127), max_size=40)),
       body=st.binary(max_size=1024))  # fmt: skip
def test_unsigned_wechat_garbage_never_500(
    live: tuple[LiveApp, httpx.Client], query: dict[str, str], body: bytes
) -> None:
    _app, client = live
    no_server_error(client.post(f"/channels/wechat/default?{urlencode(query)}", content=body))
    no_server_error(client.get(f"/channels/wechat/default?{urlencode(query)}"))


def test_oversized_bodies_are_refused_without_reading_them(live: tuple[LiveApp, httpx.Client]) -> None:
    _app, client = live
    big = b"x" * (4 * 1024 * 1024)
    assert client.post("/api/v1/webchat/messages", content=big,
                       headers={"Content-Type": "application/json"}).status_code == 413  # fmt: skip
    ts, nonce = str(int(time.time())), "n"
    query = urlencode({"timestamp": ts, "nonce": nonce, "signature": sign(TOKEN, ts, nonce)})
    assert client.post(f"/channels/wechat/default?{query}", content=big).status_code == 413
    ok = client.post("/api/v1/webchat/messages", json={"text": "多久发货？", "client_msg_id": "ok-1"})
    assert ok.status_code == 201 and json.loads(ok.text)["id"]
