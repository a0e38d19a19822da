"""Event bus: in-process when embedded, Redis pub/sub when several workers must see the same events."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import structlog

log = structlog.get_logger(__name__)


class LocalBus:
    """Fan-out to subscribers of this process."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[tuple[str, dict[str, Any]]]] = set()

    async def publish(self, topic: str, data: dict[str, Any]) -> None:
        self.deliver(topic, data)

    def deliver(self, topic: str, data: dict[str, Any]) -> None:
        for queue in list(self._queues):
            if queue.qsize() < 1000:  # a stuck subscriber must not grow memory without bound
                queue.put_nowait((topic, data))

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[tuple[str, dict[str, Any]]]]:
        queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


class RedisBus(LocalBus):
    """Publishes through Redis so every worker's local subscribers get every event."""

    def __init__(self, redis: Any, channel: str) -> None:
        super().__init__()
        self.redis = redis
        self.channel = channel
        self._task: asyncio.Task[None] | None = None

    async def publish(self, topic: str, data: dict[str, Any]) -> None:
        try:
            await self.redis.publish(self.channel, orjson.dumps([topic, data], default=str))
        except Exception as exc:  # Redis down: this worker's subscribers still get it
            log.warning("bus_publish_failed", error=str(exc))
            self.deliver(topic, data)

    async def start(self) -> None:
        """Subscribe before returning, so no event published after start() is missed."""
        ready = asyncio.Event()
        self._task = asyncio.create_task(self._listen(ready), name="redis-bus")
        with contextlib.suppress(TimeoutError):  # Redis down: listening starts when it is back
            async with asyncio.timeout(5):
                await ready.wait()

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen(self, ready: asyncio.Event) -> None:
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                ready.set()
                while True:
                    # Poll with our own timeout: with `listen()` an idle channel hit the client's socket_timeout,
                    # dropped the subscription and lost the events published while it resubscribed.
                    item = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if item is not None and item.get("type") == "message":
                        topic, data = orjson.loads(item["data"])
                        self.deliver(topic, data)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # reconnect after a Redis restart
                log.warning("bus_listen_failed", error=str(exc))
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
