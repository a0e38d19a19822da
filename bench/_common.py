"""Shared benchmark helpers: start servers on loopback, drive load, print a table and a JSON line."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
QUICK = os.environ.get("BENCH_QUICK") == "1"
HUIKE = str(ROOT / ".venv" / "bin" / "huike")
# Benchmarks drive thousands of messages from one address on purpose: not what the web-chat rate limit is for.
UNLIMITED = {"HUIKE_WEBCHAT_MESSAGES_PER_VISITOR": "1000000", "HUIKE_WEBCHAT_MESSAGES_PER_ADDRESS": "1000000"}


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 120.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server at {url} did not come up")


@contextmanager
def huike_server(env_extra: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    """A real `huike run` on an SQLite file (migrated and seeded), on a free loopback port."""
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {
            **os.environ,
            "HUIKE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/bench.db",
            "HUIKE_DATA_DIR": tmp,
            "HUIKE_PORT": str(port),
            "HUIKE_LOG_LEVEL": "WARNING",
            **UNLIMITED,
            **(env_extra or {}),
        }
        subprocess.run([HUIKE, "db", "upgrade"], env=env, check=True, capture_output=True)
        subprocess.run([HUIKE, "seed-demo"], env=env, check=True, capture_output=True)
        log_path = Path(tmp) / "server.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen([HUIKE, "run"], env=env, stdout=log, stderr=subprocess.STDOUT)
            try:
                wait_http(f"http://127.0.0.1:{port}/readyz")
                yield f"http://127.0.0.1:{port}", proc
            finally:
                proc.terminate()
                proc.wait(timeout=60)
        errors = [line for line in log_path.read_text(errors="replace").splitlines() if '"error"' in line]
        if errors:
            print(f"server logged {len(errors)} errors; first: {errors[0][:300]}", file=sys.stderr)


ECHO_SERVER = """
import sys
from aiohttp import web
async def echo(request):
    return web.json_response(await request.json())
app = web.Application()
app.router.add_post("/echo", echo)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


@contextmanager
def echo_server():  # type: ignore[no-untyped-def]
    """The reference: a bare aiohttp server that echoes the JSON it receives."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", ECHO_SERVER, str(port)])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/echo"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def drive(
    make_request: Callable[[aiohttp.ClientSession, int, int], Awaitable[bool]],
    *,
    clients: int,
    seconds: float,
    new_session_per_client: bool = True,
) -> dict[str, float]:
    """`clients` concurrent loops for `seconds`; returns throughput, p50/p99 latency and errors."""
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def client_loop(cid: int) -> None:
        nonlocal errors
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            n = 0
            while time.perf_counter() < stop:
                started = time.perf_counter()
                ok = await make_request(session, cid, n)
                latencies.append(time.perf_counter() - started)
                errors += not ok
                n += 1

    began = time.perf_counter()
    await asyncio.gather(*(client_loop(c) for c in range(clients)))
    elapsed = time.perf_counter() - began
    return summarize(latencies, elapsed, errors)


async def drive_rate(
    make_request: Callable[[aiohttp.ClientSession, int, int], Awaitable[bool]],
    *,
    rate: float,
    seconds: float,
    visitors: int = 16,
) -> dict[str, float]:
    """Open loop: start `rate` requests a second whatever the server's pace, spread over `visitors` sessions.

    A closed loop of N clients measures queueing (latency = N / throughput); this measures the
    latency a customer sees at a given arrival rate.
    """
    latencies: list[float] = []
    errors = 0
    sessions = [aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) for _ in range(visitors)]

    async def one(i: int) -> None:
        nonlocal errors
        started = time.perf_counter()
        try:
            ok = await make_request(sessions[i % visitors], i % visitors, i // visitors)
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        latencies.append(time.perf_counter() - started)
        errors += not ok

    began = time.perf_counter()
    requests = []
    for i in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, began + i / rate - time.perf_counter()))
        requests.append(asyncio.create_task(one(i)))
    await asyncio.gather(*requests)
    elapsed = time.perf_counter() - began
    for session in sessions:
        await session.close()
    return {"offered_rps": rate, **summarize(latencies, elapsed, errors)}


async def highest_sustained_rate(
    make_request: Callable[[aiohttp.ClientSession, int, int], Awaitable[bool]],
    *,
    ceiling: float,
    p99_ms: float,
    seconds: float,
) -> dict[str, float]:
    """Step the open-loop rate down from the closed-loop `ceiling` until p99 meets `p99_ms` with no errors."""
    rate = ceiling * 0.9
    result: dict[str, float] = {}
    for _step in range(6):
        result = await drive_rate(make_request, rate=round(rate, 1), seconds=seconds)
        if result["p99_ms"] < p99_ms and not result["errors"]:
            break
        rate *= 0.7
    return result


def summarize(latencies: list[float], elapsed: float, errors: int) -> dict[str, float]:
    ordered = sorted(latencies) or [0.0]
    return {
        "requests": len(latencies),
        "throughput_rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
        "errors": errors,
    }


def report(name: str, rows: list[tuple[str, dict[str, Any]]], figures: dict[str, Any]) -> None:
    """A readable table, then one JSON object as the last line."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"bench: {name}")
    keys = sorted({k for _, r in rows for k in r})
    table.add_column("case")
    for k in keys:
        table.add_column(k, justify="right")
    for label, row in rows:
        table.add_row(label, *(str(row.get(k, "")) for k in keys))
    Console(file=sys.stdout, width=160).print(table)
    print(json.dumps({"bench": name, **figures}, ensure_ascii=False), flush=True)
