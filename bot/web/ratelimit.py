"""Fixed-window counters per key (wrong passwords per address, customer look-ups per user).

Shared by every worker through Redis when configured (INCR + EXPIRE in one transaction); counted in
this process otherwise, and also while Redis is away (a limit per worker is better than none).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web

from bot.keys import redis_key, settings_key

log = structlog.get_logger(__name__)
MAX_LOCAL_KEYS = 10_000


@dataclass
class Window:
    seconds: int
    _local: dict[str, tuple[int, float]] = field(default_factory=dict)  # key -> (count, window end)

    async def count(self, app: web.Application, key: str, *, increment: bool) -> int:
        """Hits on `key` in the current window (after this one when `increment`)."""
        redis: Any = app[redis_key]
        if redis is not None:
            shared = f"{app[settings_key].redis_namespace}:{key}"
            try:
                if not increment:
                    return int(await redis.get(shared) or 0)
                async with redis.pipeline(transaction=True) as pipe:
                    pipe.incr(shared)
                    pipe.expire(shared, self.seconds, nx=True)
                    return int((await pipe.execute())[0])
            except Exception as exc:  # Redis away: fall back to this worker's own counter
                log.warning("rate_limit_redis_failed", key=key.split(":")[0], error=str(exc))
        return self._count_locally(key, increment)

    def _count_locally(self, key: str, increment: bool) -> int:
        now = time.monotonic()
        count, ends = self._local.get(key, (0, now + self.seconds))
        if ends <= now:
            count, ends = 0, now + self.seconds
        if increment:
            count += 1
            self._local[key] = (count, ends)
        if len(self._local) > MAX_LOCAL_KEYS:  # forget expired windows so memory stays bounded
            for old in [k for k, (_, end) in self._local.items() if end <= now]:
                del self._local[old]
        return count
