"""Scheduler leadership: one leader per Redis key, jobs skip elsewhere, the lease passes on when released or lost."""

from __future__ import annotations

import uuid

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from redis.asyncio import Redis

from bot.leader import Leadership

pytestmark = pytest.mark.embedded


async def test_one_leader_and_jobs_run_only_there(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    key = f"huike-test-{uuid.uuid4().hex[:8]}:scheduler:leader"
    a, b = Leadership(redis, key, ttl=5), Leadership(redis, key, ttl=5)
    runs: list[str] = []

    async def job(name: str) -> None:
        runs.append(name)

    try:
        await a.start()
        await b.start()
        assert (a.is_leader, b.is_leader) == (True, False)
        await a.guard(job)("a")
        await b.guard(job)("b")
        assert runs == ["a"]
        assert await b.campaign() is False and await a.campaign() is True  # renewal keeps it
        await a.close()  # released: the next campaign elsewhere wins at once
        assert await b.campaign() is True
        await b.guard(job)("b")
        assert runs == ["a", "b"]
    finally:
        await a.close()
        await b.close()
        await redis.aclose()


async def test_lost_redis_means_no_leader_and_install_guards_jobs(redis_url: str) -> None:
    redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)  # nothing listens there
    lost = Leadership(redis, "huike-test:lost", ttl=5)
    assert await lost.campaign() is False and not lost.is_leader  # step down: skip jobs, never double them
    embedded = Leadership(None, "unused")
    assert embedded.is_leader  # one process without Redis always runs its jobs
    sched = AsyncIOScheduler()
    ran: list[int] = []

    async def tick() -> None:
        ran.append(1)

    sched.add_job(tick, "interval", seconds=60, id="tick")
    lost.install(sched)
    job = sched.get_job("tick")
    assert job is not None
    await job.func()
    assert ran == []  # guarded: not the leader
    await redis.aclose()
