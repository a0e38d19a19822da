"""Expiring counters for rate limits, login throttling and replay guards.

Shared through Redis when configured (every worker counts together), kept in this process
otherwise, and in this process too while Redis is unreachable (a limit that fails open per worker
is better than every request failing). `clock` is injectable so tests can move time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web

from scrm.errors import DomainError

log = structlog.get_logger(__name__)
LOCAL_CAP = 50_000  # in-process keys kept at most (a flood of addresses must not grow memory without bound)


class RateLimited(DomainError):
    """429 with Retry-After (set by the error middleware from `retry_after`)."""

    code, status = "rate_limited", 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after))


@dataclass
class Counters:
    redis: Any  # redis.asyncio.Redis or None
    namespace: str
    clock: Callable[[], float] = time.monotonic
    _local: dict[str, tuple[int, float, str]] = field(default_factory=dict)  # key -> (count, expires, value)

    def _key(self, key: str) -> str:
        return f"{self.namespace}:{key}"

    async def hit(self, key: str, ttl: float, *, refresh: bool = False) -> tuple[int, float]:
        """Count one more; (count, seconds left). The window starts at the first hit, or at the latest with refresh."""
        if self.redis is not None:
            try:
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.incr(self._key(key))
                    pipe.pexpire(self._key(key), int(ttl * 1000), nx=not refresh)
                    pipe.pttl(self._key(key))
                    count, _set, left = await pipe.execute()
                return int(count), max(0, int(left)) / 1000
            except Exception as exc:  # Redis away: count in this worker
                log.warning("counter_redis_failed", error=str(exc)[:200])
        now = self.clock()
        count, expires, value = self._alive(key, now) or (0, now + ttl, "")
        self._store(key, (count + 1, now + ttl if refresh else expires, value))
        return count + 1, max(0.0, (now + ttl if refresh else expires) - now)

    async def peek(self, key: str) -> tuple[int, float]:
        """(count, seconds left) without counting; (0, 0) when absent."""
        if self.redis is not None:
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.get(self._key(key))
                    pipe.pttl(self._key(key))
                    raw, left = await pipe.execute()
                return (int(raw), max(0, int(left)) / 1000) if raw is not None else (0, 0.0)
            except Exception as exc:
                log.warning("counter_redis_failed", error=str(exc)[:200])
        found = self._alive(key, self.clock())
        return (found[0], found[1] - self.clock()) if found else (0, 0.0)

    async def remember(self, key: str, value: str, ttl: float) -> str | None:
        """Store `value` under `key` unless one is there already; returns the earlier value (None if new)."""
        if self.redis is not None:
            try:
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.set(self._key(key), value, px=int(ttl * 1000), nx=True)
                    pipe.get(self._key(key))
                    created, stored = await pipe.execute()
                return None if created else (stored.decode() if isinstance(stored, bytes) else str(stored))
            except Exception as exc:
                log.warning("counter_redis_failed", error=str(exc)[:200])
        now = self.clock()
        if found := self._alive(key, now):
            return found[2]
        self._store(key, (1, now + ttl, value))
        return None

    async def forget(self, prefix: str) -> None:
        """Drop every key starting with `prefix` (an admin lifting a throttle)."""
        if self.redis is not None:
            try:
                pattern = _glob_escape(self._key(prefix)) + "*"
                keys = [k async for k in self.redis.scan_iter(match=pattern, count=500)]
                if keys:
                    await self.redis.delete(*keys)
            except Exception as exc:
                log.warning("counter_redis_failed", error=str(exc)[:200])
        for key in [k for k in self._local if k.startswith(prefix)]:
            del self._local[key]

    def _alive(self, key: str, now: float) -> tuple[int, float, str] | None:
        found = self._local.get(key)
        if found is not None and found[1] <= now:
            del self._local[key]
            return None
        return found

    def _store(self, key: str, entry: tuple[int, float, str]) -> None:
        self._local[key] = entry
        if len(self._local) > LOCAL_CAP:
            now = self.clock()
            for stale in [k for k, (_c, ends, _v) in self._local.items() if ends <= now]:
                del self._local[stale]
            while len(self._local) > LOCAL_CAP * 0.9:  # still full of live keys: forget the oldest
                del self._local[next(iter(self._local))]


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


counters_key = web.AppKey("counters", Counters)


def counters(app: web.Application) -> Counters:
    return app[counters_key]
