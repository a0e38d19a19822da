"""`huike run --workers N`: one port, supervised workers, one scheduler leader, graceful SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis

from scrm.db import SessionFactory
from tests.conftest import REDIS_URL
from tests.reliability.conftest import Start, replies_to
from tests.reliability.harness import HUIKE

pytestmark = pytest.mark.wallclock  # signs callbacks for `huike run` processes on the real clock

QUESTION = "多久发货？"


@pytest.mark.embedded
def test_sqlite_refuses_several_workers(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUIKE_")}
    env["HUIKE_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path}/x.db"
    proc = subprocess.run([HUIKE, "run", "--workers", "2"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "PostgreSQL" in lines[0] and "Redis" in lines[0], proc.stderr


async def post(session: aiohttp.ClientSession, base: str, msg_id: str, text: str = QUESTION) -> tuple[int, int]:
    """(status, stored message id or 0)."""
    async with session.post(base + "/api/v1/webchat/messages", json={"text": text, "client_msg_id": msg_id}) as resp:
        data = await resp.json(content_type=None)
        return resp.status, int(data.get("id", 0)) if isinstance(data, dict) else 0


async def test_two_workers_one_port_leader_failover_and_worker_restart(
    start_huike: Start, rel_db: SessionFactory
) -> None:
    huike = start_huike(workers=2, HUIKE_SCHEDULER_LEASE="6")
    redis = Redis.from_url(REDIS_URL)
    try:
        pids = set(huike.worker_pids())
        assert len(pids) == 2
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:  # a new visitor each time
            results = await asyncio.gather(*(post(session, huike.url, f"m{i}") for i in range(16)))
        assert [s for s, _ in results] == [201] * 16
        replies = await replies_to(rel_db, [i for _, i in results])
        assert all(len(r) == 1 for r in replies.values())
        async with aiohttp.ClientSession() as session:  # any worker reports every worker's counts
            for _ in range(6):
                async with session.get(huike.url + "/metrics", headers={"Connection": "close"}) as resp:
                    assert metric(await resp.text(), 'huike_messages_in_total{channel="webchat"}') >= 16

        key = f"{huike.env['HUIKE_REDIS_NAMESPACE']}:scheduler:leader"
        holder = (await redis.get(key) or b"").decode()
        assert holder, "no worker holds the scheduler lease"
        leader = int(holder.split(":")[1])
        assert leader in pids and 0 < await redis.pttl(key) <= 6_000
        os.kill(leader, signal.SIGKILL)  # its lease lapses; the survivor takes over; the supervisor refills
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            holder = (await redis.get(key) or b"").decode()
            now = set(huike.worker_pids())
            if holder and int(holder.split(":")[1]) != leader and len(now) == 2 and leader not in now:
                break
            await asyncio.sleep(0.2)
        assert holder and int(holder.split(":")[1]) in set(huike.worker_pids()) - {leader}
        huike.wait_ready()
        async with aiohttp.ClientSession() as session:
            status, message_id = await post(session, huike.url, "after-restart", "运费怎么算")
        assert status == 201 and len((await replies_to(rel_db, [message_id]))[message_id]) == 1
    finally:
        await redis.aclose()
        huike.stop()


async def test_sigterm_while_busy_loses_nothing(start_huike: Start, rel_db: SessionFactory) -> None:
    huike = start_huike(workers=2)
    acknowledged: list[int] = []
    refused = 0

    async def visitor(n: int) -> None:
        nonlocal refused
        async with aiohttp.ClientSession() as session:
            for i in range(40):
                try:
                    status, message_id = await post(session, huike.url, f"v{n}-{i}", "怎么申请退货")
                except (aiohttp.ClientError, OSError):
                    refused += 1
                    return  # the server stopped listening
                if status == 201:
                    acknowledged.append(message_id)

    load = [asyncio.create_task(visitor(n)) for n in range(12)]
    await asyncio.sleep(1.5)
    huike.signal(signal.SIGTERM)
    code = await huike.wait_exit(45)
    await asyncio.gather(*load)
    assert code == 0, huike.log_tail()
    assert acknowledged, "nothing was answered before the shutdown"
    replies = await replies_to(rel_db, acknowledged)
    assert all(len(r) == 1 for r in replies.values())  # acknowledged = stored and answered, exactly once
    log = huike.log_tail(1_000_000)
    assert "unhandled_error" not in log and '"status": 500' not in log


def metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + " "))
