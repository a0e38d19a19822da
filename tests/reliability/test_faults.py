"""Faults on a live 2-worker cluster (PostgreSQL behind a cuttable proxy, Redis, flaky fake WeChat).

Passive replies are off (HUIKE_WECHAT_REPLY_BUDGET=0) so every reply goes through the outbox and
the fake WeChat API, where deliveries are counted per customer.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Iterator

import aiohttp
import pytest
from redis.asyncio import Redis
from sqlmodel import col, select

from models import OutboxMessage, OutboxStatus
from scrm.db import SessionFactory
from tests.conftest import REDIS_URL
from tests.fakes.tcp_proxy import TcpProxy
from tests.reliability.conftest import Start, inbound_of, new_id, outbox_for, replies_to, via_proxy
from tests.reliability.harness import FlakyWeChat, Huike, LoopThread, WeChatSender

pytestmark = pytest.mark.wallclock  # signs callbacks for `huike run` processes on the real clock

STORM = int(os.environ.get("HUIKE_RELIABILITY_STORM", "200"))  # `make reliability`: 10,000
QUESTION = "怎么取消订单"
RETRIED: list[int] = []  # statuses that made the sender re-post (503 when the pool is saturated), for the record


@pytest.fixture(scope="module")
def cluster(start_huike: Start, rel_database: str, pg_proxy: TcpProxy) -> Iterator[Huike]:
    huike = start_huike(workers=2, database=via_proxy(rel_database, pg_proxy), HUIKE_WECHAT_REPLY_BUDGET="0",
                        HUIKE_WECHAT_DEDUP_TTL="3600")  # fmt: skip
    yield huike
    huike.stop()


async def callbacks(sender: WeChatSender, openids: list[str], *, copies: int, concurrency: int = 60,
                    midway: asyncio.Event | None = None) -> list[int]:  # fmt: skip
    """Each customer's message posted `copies` times at once, each copy re-posted while not 200 (as WeChat does).

    Returns the final status of every copy."""
    gate = asyncio.Semaphore(concurrency)
    statuses: list[int] = []
    done = 0

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def one(openid: str) -> None:
            nonlocal done
            async with gate:  # signed when sent: a storm outlasts the replay window
                query, body = sender.envelope(sender.text_xml(openid, QUESTION, msg_id=str(abs(hash(openid)) % 10**17)))
                results = await asyncio.gather(*(sender.deliver(session, query, body) for _ in range(copies)))
            statuses.extend(status for status, _ in results)
            RETRIED.extend(s for _, seen in results for s in seen[:-1])
            done += 1
            if midway is not None and done == len(openids) // 2:
                midway.set()

        await asyncio.gather(*(one(o) for o in openids))
    return statuses


async def settle(db: SessionFactory, openids: list[str], fake: FlakyWeChat, within: float = 180.0) -> None:
    """Wait until every customer's reply is out of the outbox (sent or failed)."""
    deadline = time.monotonic() + within
    while True:
        inbound = await inbound_of(db, openids)
        replies = await replies_to(db, [m.id for m in inbound if m.id is not None])
        rows = await outbox_for(db, [r.id for rs in replies.values() for r in rs if r.id is not None])
        if len(inbound) >= len(openids) and rows and all(r.status in (OutboxStatus.SENT, OutboxStatus.FAILED)
                                                         for r in rows) and len(rows) >= len(openids):  # fmt: skip
            return
        if time.monotonic() > deadline:
            unanswered = Counter(m.state for m in inbound if not replies.get(m.id or 0))
            unsent = Counter(r.status for r in rows if r.status not in (OutboxStatus.SENT, OutboxStatus.FAILED))
            via = Counter(r.delivered_via for r in rows if r.status == OutboxStatus.SENT)
            tries = Counter(r.attempts for r in rows if r.status in unsent)
            raise AssertionError(f"not settled: {len(inbound)} inbound, {len(rows)} outbox rows; unanswered "
                                 f"inbound by state {dict(unanswered)}, unsent rows {dict(unsent)} (attempts "
                                 f"{dict(tries)}), sent via {dict(via)}")
        await asyncio.sleep(0.5)


async def assert_exactly_once(db: SessionFactory, openids: list[str], fake: FlakyWeChat) -> None:
    inbound = await inbound_of(db, openids)
    assert len(inbound) == len(openids)  # one stored message per callback, however often it came
    replies = await replies_to(db, [m.id for m in inbound if m.id is not None])
    assert sorted(len(r) for r in replies.values()) == [1] * len(openids)  # one answer each
    wanted = set(openids)
    sent = Counter(c.json["touser"] for c in fake.delivered() if c.json and c.json.get("touser") in wanted)
    twice = [openid for openid, n in sent.items() if n > 1]
    async with db() as session:  # what the outbox recorded for them, for the failure message
        rows = (await session.exec(select(OutboxMessage).where(col(OutboxMessage.external_id).in_(twice[:5])))).all()
    assert set(sent) == wanted and not twice, [(r.status, r.attempts, r.delivered_via, r.last_error) for r in rows]


async def test_retry_storm_across_two_workers(cluster: Huike, flaky: FlakyWeChat, rel_db: SessionFactory) -> None:
    flaky.failure_rate = 0.0
    openids = [new_id() for _ in range(STORM)]
    statuses = await callbacks(WeChatSender(cluster.url, flaky.app_id), openids, copies=3)
    assert Counter(statuses) == {200: 3 * STORM}
    await settle(rel_db, openids, flaky)
    await assert_exactly_once(rel_db, openids, flaky)


async def test_redis_flushed_mid_load_still_no_duplicates(
    cluster: Huike, flaky: FlakyWeChat, rel_db: SessionFactory
) -> None:
    flaky.failure_rate = 0.0
    namespace = cluster.env["HUIKE_REDIS_NAMESPACE"]
    openids = [new_id() for _ in range(120)]
    midway = asyncio.Event()
    redis = Redis.from_url(REDIS_URL)
    flushed = 0

    async def flush_midway() -> None:
        # The Redis is shared with other test runs, so "flush" deletes every key of this cluster's namespace
        # (dedup keys, the cached access token and its lock, reply counters, the scheduler lease).
        nonlocal flushed
        await midway.wait()
        async for key in redis.scan_iter(match=f"{namespace}:*", count=500):
            flushed += await redis.delete(key)

    try:
        statuses, _ = await asyncio.gather(
            callbacks(WeChatSender(cluster.url, flaky.app_id), openids, copies=3, concurrency=30, midway=midway),
            flush_midway(),
        )
        # WeChat re-posts every message once more after the flush: dedup falls back to the database keys
        again = await callbacks(WeChatSender(cluster.url, flaky.app_id), openids[:40], copies=1)
    finally:
        await redis.aclose()
    assert flushed > 0
    assert set(statuses) == {200} and set(again) == {200}
    await settle(rel_db, openids, flaky)
    await assert_exactly_once(rel_db, openids, flaky)


async def test_wechat_api_failing_30_percent(cluster: Huike, flaky: FlakyWeChat, rel_db: SessionFactory) -> None:
    flaky.failure_rate = 0.3
    failed_before = flaky.failed_sends
    openids = [new_id() for _ in range(60)]
    try:
        statuses = await callbacks(WeChatSender(cluster.url, flaky.app_id), openids, copies=1)
        assert set(statuses) == {200}
        await settle(rel_db, openids, flaky, within=240)
    finally:
        flaky.failure_rate = 0.0
    assert flaky.failed_sends > failed_before
    await assert_exactly_once(rel_db, openids, flaky)
    inbound = await inbound_of(rel_db, openids)
    replies = await replies_to(rel_db, [m.id for m in inbound if m.id is not None])
    rows = await outbox_for(rel_db, [r.id for rs in replies.values() for r in rs if r.id is not None])
    assert {r.status for r in rows} == {OutboxStatus.SENT}
    retried = [r for r in rows if r.attempts > 1]
    assert retried, "no reply needed a retry"
    assert all(r.last_error for r in retried)  # the failure that caused the backoff is on the row
    assert all(r.sent_at is not None and r.sent_at > r.created_at for r in retried)


async def test_database_cut_fails_fast_and_recovers(
    cluster: Huike, flaky: FlakyWeChat, pg_proxy: TcpProxy, loop_thread: LoopThread, rel_db: SessionFactory
) -> None:
    acknowledged: dict[str, int] = {}
    during_cut: list[int] = []
    cut = asyncio.Event()
    healed = asyncio.Event()

    async def visitor(n: int) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            i = 0
            while not healed.is_set() or i < 3:
                msg_id = f"cut{n}-{i}"
                while True:  # the widget re-sends the same client_msg_id until it is acknowledged
                    in_cut = cut.is_set() and not healed.is_set()
                    async with session.post(cluster.url + "/api/v1/webchat/messages",
                                            json={"text": "运费怎么算", "client_msg_id": msg_id}) as resp:  # fmt: skip
                        body = await resp.json(content_type=None)
                        if in_cut and cut.is_set() and not healed.is_set():
                            during_cut.append(resp.status)
                        if resp.status in (200, 201):
                            acknowledged[f"{n}:{msg_id}"] = body["id"]
                            break
                        assert resp.status == 503 and resp.headers.get("Retry-After"), (resp.status, body)
                    await asyncio.sleep(0.2)
                i += 1

    load = [asyncio.create_task(visitor(n)) for n in range(6)]
    await asyncio.sleep(1.0)
    loop_thread.run(pg_proxy.cut())
    cut.set()
    sender = WeChatSender(cluster.url, flaky.app_id)
    async with aiohttp.ClientSession() as session:
        await asyncio.sleep(1.0)
        query, body = sender.envelope(sender.text_xml(new_id(), QUESTION, msg_id="90001"))
        wechat_status, _ = await sender.post(session, query, body)
    await asyncio.sleep(2.0)
    loop_thread.run(pg_proxy.restore())
    healed.set()
    await asyncio.wait_for(asyncio.gather(*load), 120)
    assert wechat_status == 503  # WeChat will retry it
    assert 503 in during_cut
    ids = list(acknowledged.values())
    replies = await replies_to(rel_db, ids)
    assert sorted(len(r) for r in replies.values()) == [1] * len(set(ids))  # every acknowledged message answered once
