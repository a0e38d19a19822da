"""Web-chat FAQ round trip against `huike run` on SQLite, with a bare aiohttp echo server as reference.

Target: throughput >= 30% of the echo server's, p99 < 50 ms, at 50 concurrent clients.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import QUICK, drive, echo_server, highest_sustained_rate, huike_server, report

CLIENTS = 50
SECONDS = 5.0 if QUICK else 20.0
TARGET_P99_MS = 50.0
QUESTIONS = ["多久发货？", "运费怎么算", "怎么申请退货", "积分有什么用", "怎么开发票", "优惠券怎么用"]


async def run() -> None:
    counter = itertools.count()

    with huike_server() as (base, _proc):
        url = base + "/api/v1/webchat/messages"

        async def ask(session: aiohttp.ClientSession, cid: int, n: int) -> bool:
            body = {"text": QUESTIONS[n % len(QUESTIONS)], "client_msg_id": f"b{cid}-{n}-{next(counter)}"}
            async with session.post(url, json=body) as resp:
                data = await resp.json()
                return resp.status == 201 and bool(data.get("replies"))

        await drive(ask, clients=CLIENTS, seconds=2.0)  # warm-up: model load, visitors created
        huike = await drive(ask, clients=CLIENTS, seconds=SECONDS)
        sustained = await highest_sustained_rate(
            ask, ceiling=huike["throughput_rps"], p99_ms=TARGET_P99_MS, seconds=SECONDS
        )

    with echo_server() as echo_url:

        async def echo(session: aiohttp.ClientSession, cid: int, n: int) -> bool:
            async with session.post(echo_url, json={"text": "多久发货？", "client_msg_id": f"{cid}-{n}"}) as resp:
                await resp.json()
                return resp.status == 200

        await drive(echo, clients=CLIENTS, seconds=1.0)
        reference = await drive(echo, clients=CLIENTS, seconds=SECONDS)

    ratio = round(huike["throughput_rps"] / reference["throughput_rps"], 3) if reference["throughput_rps"] else 0.0
    report(
        "webchat",
        [
            (f"huike FAQ round trip (SQLite, {CLIENTS} clients)", huike),
            (f"huike, open loop at {sustained['offered_rps']} msg/s", sustained),
            (f"bare aiohttp echo ({CLIENTS} clients)", reference),
        ],
        {
            "clients": CLIENTS,
            "seconds": SECONDS,
            "throughput_rps": huike["throughput_rps"],
            "p50_ms": huike["p50_ms"],
            "p99_ms": huike["p99_ms"],
            "errors": huike["errors"],
            "reference_rps": reference["throughput_rps"],
            "reference_p99_ms": reference["p99_ms"],
            "ratio": ratio,
            # the highest arrival rate (open loop) answered with p99 under the target, and that p99
            "sustained_rps": sustained["throughput_rps"],
            "sustained_p99_ms": sustained["p99_ms"],
        },
    )


if __name__ == "__main__":
    asyncio.run(run())
