"""kill -9 after a message is stored but before its reply: after restart it is answered exactly once.

The NLU runs against a Rasa endpoint we control (a loopback server that holds the parse call), so
the kill lands at a known point: the inbound row is committed and the turn is in progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator

import aiohttp
import pytest
from aiohttp import web
from sqlmodel import select

from models import InboundState, Message, OutboxStatus
from scrm.db import SessionFactory
from tests.reliability.conftest import Start, inbound_of, new_id, outbox_for, replies_to
from tests.reliability.harness import FlakyWeChat, LoopThread, WeChatSender, free_port

pytestmark = pytest.mark.wallclock  # signs callbacks for `huike run` processes on the real clock


class HangingRasa:
    """POST /model/parse: holds every call while `hang` is set, else answers 503 (NLU falls back to embedded)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.hang = True
        self.called = threading.Event()
        self.runner: web.AppRunner | None = None
        self.released = asyncio.Event()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/model/parse", self.parse)
        self.runner = web.AppRunner(app, shutdown_timeout=1)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        self.released.set()
        if self.runner is not None:
            await self.runner.cleanup()

    async def parse(self, request: web.Request) -> web.StreamResponse:
        self.called.set()
        if self.hang:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.released.wait(), 300)
        return web.Response(status=503)


@pytest.fixture
def rasa(loop_thread: LoopThread) -> Iterator[HangingRasa]:
    server = HangingRasa()
    loop_thread.run(server.start())
    yield server
    loop_thread.run(server.stop(), timeout=10)


async def test_kill9_between_store_and_reply_answers_exactly_once(
    start_huike: Start, rasa: HangingRasa, flaky: FlakyWeChat, rel_db: SessionFactory
) -> None:
    flaky.failure_rate = 0.0
    huike = start_huike(workers=1, HUIKE_NLU_BACKEND="rasa", HUIKE_RASA_URL=rasa.url, HUIKE_RASA_TIMEOUT="120",
                        HUIKE_WECHAT_REPLY_BUDGET="0")  # fmt: skip
    openid = new_id()
    sender = WeChatSender(huike.url, flaky.app_id)
    query, body = sender.envelope(sender.text_xml(openid, "怎么取消订单", msg_id="7700001"))
    async with aiohttp.ClientSession() as session:
        status, _ = await sender.post(session, query, body)
        assert status == 200  # stored, acknowledged; the turn is now waiting on the NLU
        assert await asyncio.to_thread(rasa.called.wait, 60)
        huike.kill9()

        (message,) = await inbound_of(rel_db, [openid])
        assert message.state == InboundState.RECEIVED  # stored, never answered: the turn died with the process
        assert (await replies_to(rel_db, [message.id]))[message.id] == []  # type: ignore[index,list-item]

        rasa.hang = False
        huike.start()  # recovery at start answers what was left unanswered
        retry_status, _ = await sender.post(session, query, body)  # WeChat's retry of the same message
        assert retry_status == 200

    assert message.id is not None
    deadline = time.monotonic() + 60
    while True:
        replies = (await replies_to(rel_db, [message.id]))[message.id]
        rows = await outbox_for(rel_db, [r.id for r in replies if r.id is not None])
        if rows and all(r.status == OutboxStatus.SENT for r in rows):
            break
        assert time.monotonic() < deadline, f"reply not delivered: {rows}"
        await asyncio.sleep(0.3)
    assert len(replies) == 1
    async with rel_db() as s:
        assert (await s.exec(select(Message.state).where(Message.id == message.id))).one() == InboundState.HANDLED
    sends = [c for c in flaky.delivered() if c.json and c.json.get("touser") == openid]
    assert len(sends) == 1  # the customer got one answer
    huike.stop()
