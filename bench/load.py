"""Sustained mixed load (web-chat + WeChat callbacks) at 1, 2 and 4 workers on PostgreSQL + Redis.

Each client loop alternates a web-chat FAQ question and a signed WeChat text callback (new
customer each time, so both paths store, answer and deliver). Reported per worker count:
throughput, p50/p99, errors and RSS per worker; the bare aiohttp echo server is measured in the
same run as the reference. Then 1,000 web-chat WebSockets are held open on one worker to
measure memory per connection.

Needs PostgreSQL (HUIKE_BENCH_PG, default postgresql+asyncpg://postgres@127.0.0.1:5432/test) and
Redis (HUIKE_BENCH_REDIS, default redis://127.0.0.1:6379/0). BENCH_QUICK=1: short.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import HUIKE, QUICK, UNLIMITED, drive, echo_server, free_port, highest_sustained_rate, report

from bot.channels.wechat_common import render_xml, sign
from tests import dbutil

PG = os.environ.get("HUIKE_BENCH_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("HUIKE_BENCH_REDIS", "redis://127.0.0.1:6379/0")
WORKERS = (1, 2) if QUICK else (1, 2, 4)
CLIENTS = 32
SECONDS = 5.0 if QUICK else 20.0
SOCKETS = 200 if QUICK else 1000
TARGET_P99_MS = 100.0
TOKEN = "bench-token"
QUESTIONS = ["多久发货？", "运费怎么算", "怎么申请退货", "积分有什么用", "怎么开发票", "优惠券怎么用"]


@contextlib.contextmanager
def fake_wechat() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.wechat_server", "--port", str(port)],
                            cwd=str(Path(__file__).resolve().parent.parent), stdout=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                import socket

                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def database() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        url = dbutil.create_database(PG, Path(tmp), label="bench")
        try:
            yield url
        finally:
            dbutil.drop_database(PG, url)


@contextlib.contextmanager
def huike(env: dict[str, str], workers: int) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    proc, base = _start(env, workers)
    try:
        yield base, proc
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _start(env: dict[str, str], workers: int, attempts: int = 3) -> tuple[subprocess.Popen[bytes], str]:
    """`huike run --workers N` on a free port, ready; retried when it exits early (e.g. the port was taken)."""
    import urllib.request

    for _attempt in range(attempts):
        run_env = {**env, "HUIKE_PORT": str(free_port()), "HUIKE_REDIS_NAMESPACE": f"bench-{uuid.uuid4().hex[:8]}"}
        log = tempfile.TemporaryFile()  # noqa: SIM115 - the server writes to it; closed below
        proc = subprocess.Popen([HUIKE, "run", "--workers", str(workers)], env=run_env, stdout=log,
                                stderr=subprocess.STDOUT)  # fmt: skip
        base = f"http://127.0.0.1:{run_env['HUIKE_PORT']}"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(base + "/readyz", timeout=2) as r:
                    children = len(psutil.Process(proc.pid).children())
                    if r.status == 200 and (workers == 1 or children >= workers):
                        return proc, base
            except OSError:
                pass
            time.sleep(0.3)
        log.seek(0)
        tail = log.read()[-2000:].decode(errors="replace")
        log.close()
        proc.kill()
        proc.wait(timeout=30)
        print(f"huike with {workers} worker(s) did not come up, retrying: {tail}", file=sys.stderr, flush=True)
    raise RuntimeError(f"huike with {workers} worker(s) did not come up after {attempts} attempts")


def worker_rss_mb(proc: subprocess.Popen[bytes]) -> list[float]:
    parent = psutil.Process(proc.pid)
    procs = parent.children() or [parent]
    return [round(p.memory_info().rss / 2**20, 1) for p in procs]


async def mixed_load(base: str, seconds: float) -> dict[str, float]:
    counter = itertools.count()
    run = uuid.uuid4().hex[:6]

    async def one(session: aiohttp.ClientSession, cid: int, n: int) -> bool:
        i = next(counter)
        if n % 2 == 0:
            body = {"text": QUESTIONS[i % len(QUESTIONS)], "client_msg_id": f"{run}-{cid}-{n}-{i}"}
            async with session.post(base + "/api/v1/webchat/messages", json=body) as resp:
                await resp.read()
                return resp.status == 201
        ts, nonce = str(int(time.time())), uuid.uuid4().hex[:8]
        xml = render_xml({"ToUserName": "gh_bench", "FromUserName": f"o{run}{cid}x{n}", "CreateTime": ts,
                          "MsgType": "text", "Content": QUESTIONS[i % len(QUESTIONS)],
                          "MsgId": str(uuid.uuid4().int % 10**18)})  # fmt: skip
        query = urlencode({"timestamp": ts, "nonce": nonce, "signature": sign(TOKEN, ts, nonce)})
        async with session.post(f"{base}/channels/wechat/default?{query}", data=xml.encode()) as resp:
            await resp.read()
            return resp.status == 200

    await drive(one, clients=CLIENTS, seconds=2.0)  # warm-up: connections, caches, model pages
    closed = await drive(one, clients=CLIENTS, seconds=seconds)
    sustained = await highest_sustained_rate(
        one, ceiling=closed["throughput_rps"], p99_ms=TARGET_P99_MS, seconds=seconds
    )
    return closed | {f"sustained_{k}": v for k, v in sustained.items() if k != "requests"}


async def hold_websockets(base: str, proc: subprocess.Popen[bytes], count: int) -> dict[str, float]:
    """Open `count` web-chat WebSockets (one visitor each) and measure the worker's RSS growth."""
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, count * 2 + 256)), hard))
    before = sum(worker_rss_mb(proc))
    sessions: list[aiohttp.ClientSession] = []
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    errors = 0
    ws_url = base.replace("http://", "ws://") + "/api/v1/webchat/ws"
    connector = aiohttp.TCPConnector(limit=0)
    gate = asyncio.Semaphore(50)

    async def connect() -> None:
        nonlocal errors
        session = aiohttp.ClientSession(connector=connector, connector_owner=False,
                                        cookie_jar=aiohttp.DummyCookieJar())  # fmt: skip
        sessions.append(session)
        async with gate:
            try:
                sockets.append(await session.ws_connect(ws_url, heartbeat=None, timeout=aiohttp.ClientWSTimeout(30)))
            except (TimeoutError, aiohttp.ClientError, OSError):
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(connect() for _ in range(count)))
    opened = time.perf_counter() - started
    await asyncio.sleep(3.0)  # let the server settle (history queries, bus subscriptions)
    during = sum(worker_rss_mb(proc))
    alive = sum(not ws.closed for ws in sockets)
    for ws in sockets:
        await ws.close()
    for session in sessions:
        await session.close()
    await connector.close()
    held = max(alive, 1)
    return {
        "connections": alive,
        "errors": errors,
        "open_seconds": round(opened, 2),
        "rss_before_mb": round(before, 1),
        "rss_held_mb": round(during, 1),
        "kb_per_connection": round((during - before) * 1024 / held, 1),
    }


def prepare(url: str, wechat: str, data_dir: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUIKE_")}
    env |= {"HUIKE_DATABASE_URL": url, "HUIKE_REDIS_URL": REDIS, "HUIKE_DATA_DIR": data_dir,
            "HUIKE_LOG_LEVEL": "WARNING", "HUIKE_LOG_JSON": "true", "HUIKE_WECHAT_TOKEN": TOKEN, **UNLIMITED,
            "HUIKE_WECHAT_APP_ID": "wx_fake_app", "HUIKE_WECHAT_APP_SECRET": "fake-secret",
            "HUIKE_WECHAT_API_BASE": wechat}  # fmt: skip
    subprocess.run([HUIKE, "db", "upgrade"], env=env, check=True, capture_output=True)
    subprocess.run([HUIKE, "seed-demo"], env=env, check=True, capture_output=True)
    return env


async def run(env: dict[str, str]) -> None:
    rows: list[tuple[str, dict[str, Any]]] = []
    # the machine may be shared (other test runs): the 1-minute load average is part of the context of every figure
    figures: dict[str, Any] = {"clients": CLIENTS, "seconds": SECONDS, "cpus": os.cpu_count(),
                               "loadavg_1m_before": round(os.getloadavg()[0], 2)}  # fmt: skip
    for workers in WORKERS:
        with huike(env, workers) as (base, proc):
            result = await mixed_load(base, SECONDS)
            rss = worker_rss_mb(proc)
        result |= {"rss_max_mb": max(rss), "workers": workers}
        rows.append((f"huike mixed, {workers} worker(s)", result))
        figures[f"w{workers}"] = result
    with huike(env, 1) as (base, proc):
        ws = await hold_websockets(base, proc, SOCKETS)
    rows.append((f"{SOCKETS} web-chat WebSockets, 1 worker", ws))
    figures["websockets"] = ws

    with echo_server() as echo_url:

        async def echo(session: aiohttp.ClientSession, cid: int, n: int) -> bool:
            async with session.post(echo_url, json={"text": "多久发货？", "client_msg_id": f"{cid}-{n}"}) as resp:
                await resp.read()
                return resp.status == 200

        await drive(echo, clients=CLIENTS, seconds=1.0)
        reference = await drive(echo, clients=CLIENTS, seconds=SECONDS)
    rows.append((f"bare aiohttp echo ({CLIENTS} clients)", reference))
    figures["reference"] = reference
    best = max((figures[f"w{w}"] for w in WORKERS), key=lambda r: r["throughput_rps"])
    steady = max((figures[f"w{w}"] for w in WORKERS), key=lambda r: r["sustained_throughput_rps"])
    figures |= {
        "throughput_rps": best["throughput_rps"],
        "best_workers": best["workers"],
        "p99_ms_at_best": best["p99_ms"],
        # the highest open-loop arrival rate with p99 under the target (per worker count in w1, w2 …)
        "sustained_rps": steady["sustained_throughput_rps"],
        "sustained_p99_ms": steady["sustained_p99_ms"],
        "sustained_workers": steady["workers"],
        "errors": sum(figures[f"w{w}"]["errors"] for w in WORKERS),
        "rss_max_mb": max(figures[f"w{w}"]["rss_max_mb"] for w in WORKERS),
        "reference_ratio": round(best["throughput_rps"] / reference["throughput_rps"], 3)
        if reference["throughput_rps"] else 0.0,
        "kb_per_websocket": ws["kb_per_connection"],
        "loadavg_1m_after": round(os.getloadavg()[0], 2),
    }
    report("load", rows, figures)


def main() -> None:
    with database() as url, fake_wechat() as wechat, tempfile.TemporaryDirectory() as data_dir:
        asyncio.run(run(prepare(url, wechat, data_dir)))


if __name__ == "__main__":
    main()
