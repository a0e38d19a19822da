"""The Redis event bus (console fan-out, web-chat push across workers) loses nothing after idle periods."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from bot.bus import RedisBus


@pytest.mark.embedded
async def test_events_after_an_idle_period_reach_every_worker(redis_url: str) -> None:
    # The app's client has a 2 s socket timeout; an idle subscription must not drop into a reconnect gap.
    channel = f"huike-test-{uuid.uuid4().hex[:8]}:events"
    publisher_redis = Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    subscriber_redis = Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    worker_a, worker_b = RedisBus(publisher_redis, channel), RedisBus(subscriber_redis, channel)
    await worker_a.start()
    await worker_b.start()
    try:
        async with worker_b.subscribe() as queue:
            await asyncio.sleep(0.5)  # subscribed
            received = []
            for n in range(6):  # idle longer than the socket timeout between events
                await asyncio.sleep(2.1 + 0.1 * n)
                await worker_a.publish("message", {"n": n})
                received.append((await asyncio.wait_for(queue.get(), 10))[1]["n"])
            assert received == list(range(6))
    finally:
        await worker_a.close()
        await worker_b.close()
        await publisher_redis.aclose()
        await subscriber_redis.aclose()
