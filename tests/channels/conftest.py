"""WeChat test rig: the fake WeChat API, Huike apps configured against it, and a signing sender."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlmodel import col, select

from bot.channels.wechat_common import Cipher, render_xml, safe_xml_dict, sign
from config.settings import Settings
from models import Message, OutboxMessage, OutboxStatus
from scrm.db import SessionFactory
from tests.conftest import make_settings
from tests.fakes.wechat_server import FakeWeChat

TOKEN = "huike-test-token"
AES_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
FAQ_QUESTION = "怎么取消订单"
FAQ_ANSWER_PART = "取消订单"


@pytest.fixture
async def fake() -> AsyncIterator[FakeWeChat]:
    async with FakeWeChat() as server:
        yield server


def wechat_settings(database_url: str, tmp_path: Path, fake: FakeWeChat, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "wechat_token": TOKEN,
        "wechat_app_id": fake.app_id,
        "wechat_app_secret": fake.secret,
        "wechat_aes_key": AES_KEY,
        "wechat_api_base": fake.url,
        "wecom_corp_id": fake.corp_id,
        "wecom_agent_id": "1000002",
        "wecom_secret": "wecom-secret",
        "wecom_token": TOKEN,
        "wecom_aes_key": AES_KEY,
        "wecom_api_base": fake.url,
        # a loaded CI machine must not turn an expected passive reply into the API fallback; tests of
        # the fallback set the budget to 0
        "wechat_reply_budget": 60.0,
    }
    values.update(overrides)
    return make_settings(database_url, tmp_path, **values)


AppFactory = Callable[..., Awaitable[Any]]


@pytest.fixture
async def make_app(
    database_url: str, tmp_path: Path, db: SessionFactory, fake: FakeWeChat, seeded_faq: int, aiohttp_client: Any
) -> AppFactory:
    """Start a Huike app (a "worker") against the fake WeChat API; overrides go to its settings."""

    async def start(**overrides: Any) -> Any:
        from bot.app import create_app

        return await aiohttp_client(create_app(wechat_settings(database_url, tmp_path, fake, **overrides)))

    return start


@pytest.fixture
async def wx(make_app: AppFactory) -> Any:
    return await make_app()


class Sender:
    """Posts callbacks the way WeChat does: signed, optionally AES-encrypted, and decodes the reply."""

    def __init__(self, client: Any, *, app_id: str, path: str = "/channels/wechat/default", wecom: bool = False):
        self.client, self.app_id, self.path, self.wecom = client, app_id, path, wecom
        self.cipher = Cipher(TOKEN, AES_KEY, app_id, wecom=wecom)

    @staticmethod
    def text_xml(openid: str, content: str, msg_id: str | None = None, to: str = "gh_test") -> str:
        return render_xml({
            "ToUserName": to, "FromUserName": openid, "CreateTime": str(int(time.time())), "MsgType": "text",
            "Content": content, "MsgId": msg_id or str(uuid.uuid4().int % 10**18),
        })  # fmt: skip

    @staticmethod
    def event_xml(openid: str, event: str, **fields: str) -> str:
        return render_xml({"ToUserName": "gh_test", "FromUserName": openid, "CreateTime": str(int(time.time())),
                           "MsgType": "event", "Event": event, **fields})  # fmt: skip

    async def post(
        self,
        xml: str | bytes,
        *,
        encrypted: bool | None = None,
        timestamp: int | None = None,
        signature: str | None = None,
        cipher: Cipher | None = None,
    ) -> tuple[int, str]:
        """(HTTP status, reply body decrypted to plain XML / "success" / error text)."""
        encrypted = self.wecom if encrypted is None else encrypted
        ts, nonce = str(timestamp if timestamp is not None else int(time.time())), uuid.uuid4().hex[:10]
        query = {"timestamp": ts, "nonce": nonce}
        body: bytes
        if encrypted:
            text = xml.decode() if isinstance(xml, bytes) else xml
            envelope = safe_xml_dict((cipher or self.cipher).encrypt(text, nonce, ts))
            body = render_xml({"ToUserName": self.app_id, "Encrypt": envelope["Encrypt"]}).encode()
            query["msg_signature"] = signature or envelope["MsgSignature"]
            if not self.wecom:
                query |= {"encrypt_type": "aes", "signature": sign(TOKEN, ts, nonce), "openid": "x"}
        else:
            body = xml if isinstance(xml, bytes) else xml.encode()
            query["signature"] = signature or sign(TOKEN, ts, nonce)
        resp = await self.client.post(
            f"{self.path}?{urlencode(query)}", data=body, headers={"Content-Type": "text/xml"}
        )
        reply = await resp.text()
        if encrypted and resp.status == 200 and reply.startswith("<xml>"):
            env = safe_xml_dict(reply)
            assert env["MsgSignature"] == sign(TOKEN, env["TimeStamp"], env["Nonce"], env["Encrypt"])
            reply = self.cipher.decrypt(env["Encrypt"], env["MsgSignature"], env["TimeStamp"], env["Nonce"])
        return resp.status, reply

    async def post_envelope(self, body: bytes) -> int:
        """Post someone else's ready-made encrypted envelope, correctly signed with our token."""
        ts, nonce = str(int(time.time())), uuid.uuid4().hex[:10]
        encrypt = str(safe_xml_dict(body)["Encrypt"])
        query = {"timestamp": ts, "nonce": nonce, "msg_signature": sign(TOKEN, ts, nonce, encrypt)}
        if not self.wecom:
            query |= {"encrypt_type": "aes", "signature": sign(TOKEN, ts, nonce)}
        resp = await self.client.post(f"{self.path}?{urlencode(query)}", data=body)
        return int(resp.status)


def reply_content(reply: str) -> str:
    return str(safe_xml_dict(reply).get("Content", "")) if reply.startswith("<xml>") else ""


async def inbound_rows(db: SessionFactory, channel_msg_id: str | None = None) -> list[Message]:
    async with db() as session:
        query = select(Message).where(Message.direction == "in")
        if channel_msg_id is not None:
            query = query.where(Message.channel_msg_id == channel_msg_id)
        return list((await session.exec(query)).all())


async def outbox_rows(db: SessionFactory) -> list[OutboxMessage]:
    async with db() as session:
        return list((await session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))).all())


async def wait_for(predicate: Callable[[], Awaitable[bool]], within: float = 60.0) -> None:
    """Poll until `predicate` holds (asynchronous delivery); fails the test after `within` seconds."""
    deadline = time.monotonic() + within
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def outbox_settled(db: SessionFactory, at_least: int = 1) -> bool:
    """At least `at_least` outbox rows exist and none is still pending or being sent."""
    async with db() as session:
        rows = (await session.exec(select(OutboxMessage.status))).all()
    busy = [s for s in rows if s in (OutboxStatus.PENDING, OutboxStatus.SENDING)]
    return len(rows) >= at_least and not busy
