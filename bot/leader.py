"""Scheduler leadership: with several workers, one of them (the leader) runs the scheduled jobs.

The leader holds a Redis key with an expiry (SET NX PX) and renews it well before it expires;
if the leader dies, the key lapses and another worker takes over within `ttl`. Every job the
scheduler runs is wrapped by `Leadership.guard`: on a non-leader it returns at once. The jobs
themselves stay safe if two ever overlap (DB claims, ledger rows, SKIP LOCKED) — leadership
avoids the duplicate work, the database prevents duplicate effects.

Without Redis (the embedded single-process setup) this worker is always the leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from apscheduler.events import EVENT_JOB_ADDED, JobEvent
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.date import DateTrigger

log = structlog.get_logger(__name__)

# Renew the lease only if we still hold it; extend atomically.
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""
_GUARDED = "__huike_leader_guarded__"


class Leadership:
    """Campaign for (and keep) the scheduler lease; `is_leader` says whether jobs may run here."""

    def __init__(self, redis: Any | None, key: str, *, ttl: float = 30.0, renew_every: float | None = None) -> None:
        self.redis = redis
        self.key = key
        self.ttl = ttl
        self.renew_every = renew_every if renew_every is not None else ttl / 3
        self.identity = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._leader = redis is None
        self._task: asyncio.Task[None] | None = None

    @property
    def is_leader(self) -> bool:
        return self._leader

    async def start(self) -> None:
        if self.redis is None:
            return
        await self.campaign()
        self._task = asyncio.create_task(self._loop(), name="scheduler-leadership")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.redis is not None and self._leader:
            with contextlib.suppress(Exception):  # Redis away: the lease simply expires
                await self.redis.eval(_RELEASE, 1, self.key, self.identity)
        self._leader = self.redis is None

    async def campaign(self) -> bool:
        """Take the lease if free, renew it if ours; on Redis errors step down (jobs skip, never double)."""
        assert self.redis is not None
        ms = int(self.ttl * 1000)
        try:
            if self._leader and await self.redis.eval(_RENEW, 1, self.key, self.identity, ms):
                return True
            won = bool(await self.redis.set(self.key, self.identity, nx=True, px=ms))
        except Exception as exc:
            if self._leader:
                log.warning("scheduler_leadership_lost", reason=str(exc)[:200])
            self._leader = False
            return False
        if won != self._leader:
            log.info("scheduler_leadership", leader=won, identity=self.identity)
        self._leader = won
        return won

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.renew_every)
            await self.campaign()

    def guard(self, func: Callable[..., Awaitable[Any]], job_id: str = "") -> Callable[..., Awaitable[Any]]:
        """`func`, but only on the leader."""
        if getattr(func, _GUARDED, False):
            return func

        @functools.wraps(func)
        async def guarded(*args: Any, **kwargs: Any) -> Any:
            if not self._leader:
                return None
            return await func(*args, **kwargs)

        setattr(guarded, _GUARDED, True)
        return guarded

    def install(self, scheduler: BaseScheduler) -> None:
        """Guard every job already added and every job added later."""
        for job in scheduler.get_jobs():
            self._wrap(scheduler, job.id)

        def on_added(event: JobEvent) -> None:
            self._wrap(scheduler, event.job_id)

        scheduler.add_listener(on_added, EVENT_JOB_ADDED)

    def _wrap(self, scheduler: BaseScheduler, job_id: str) -> None:
        job = scheduler.get_job(job_id)
        if job is None or getattr(job.func, _GUARDED, False):
            return
        if isinstance(job.trigger, DateTrigger):  # one-shot start-up jobs (idempotent seeds) run everywhere
            return
        if not asyncio.iscoroutinefunction(job.func):
            log.warning("scheduler_job_not_guarded", job_id=job_id, reason="not a coroutine function")
            return
        scheduler.modify_job(job_id, func=self.guard(job.func, job_id))


leader_key = web.AppKey("leader", Leadership)
