"""Tickets: business-time arithmetic speed, ticket opening throughput (triage + SLA + assignment +
notice), and the SLA sweep over many due tickets with two sweepers racing (escalations must equal
the number of breaches: never twice).

SQLite by default; HUIKE_BENCH_DATABASE_URL=postgresql+asyncpg://… for PostgreSQL (a scratch database
is created and dropped). BENCH_QUICK=1 for a short pass.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import QUICK, report


def bench_calendar() -> dict[str, Any]:
    from scrm.calendar import BusinessCalendar

    cal = BusinessCalendar.build(hours=[("09:00", "12:00"), ("13:30", "18:00")])
    rng = random.Random(0)
    starts = [
        datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=rng.randrange(0, 60 * 24 * 700)) for _ in range(2000)
    ]
    spans = [timedelta(minutes=rng.randrange(30, 60 * 60)) for _ in starts]
    cal.is_workday(datetime(2027, 1, 4).date())  # warm the year caches (2027 = lunar fallback)
    cal.is_workday(datetime(2026, 1, 4).date())
    n = 500 if QUICK else 2000
    took = []
    for start, span in zip(starts[:n], spans[:n], strict=True):
        began = time.perf_counter()
        cal.add_business_time(start, span)
        took.append(time.perf_counter() - began)
    took.sort()
    return {
        "calls": n,
        "p50_us": round(statistics.median(took) * 1e6, 1),
        "p99_us": round(took[int(len(took) * 0.99)] * 1e6, 1),
    }


async def bench_db(url: str) -> dict[str, Any]:
    from sqlmodel import SQLModel, func, select

    from models import Conversation, Customer, Presence, Role, User
    from models.ticket import TicketEvent
    from scrm import tickets
    from scrm.audit import Actor
    from scrm.db import make_engine, make_session_factory, transaction
    from scrm.ticket_sla import sweep

    class Clock:
        moment = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)

        def __call__(self) -> datetime:
            return self.moment

    clock = Clock()
    policy = tickets.TicketPolicy.load(clock=clock)
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(SQLModel.metadata.create_all)
    sessions = make_session_factory(engine)
    count = 200 if QUICK else 2000
    async with transaction(sessions) as s:
        for i in range(8):
            s.add(User(username=f"agent{i}", role=Role.AGENT, skills="物流,售后", presence=Presence.ONLINE,
                       password_hash="x", max_concurrent=50))  # fmt: skip
        s.add(User(username="boss", role=Role.SUPERVISOR, password_hash="x"))
        customers = [Customer() for _ in range(count)]
        s.add_all(customers)
        await s.flush()
        s.add_all(Conversation(customer_id=c.id or 0, channel="webchat", app_id="default", external_id=f"v{c.id}")
                  for c in customers)  # fmt: skip
    texts = ["快递丢件了，我要投诉", "热水壶质量太差漏电了，我要打12315", "退款三天了还没到账，差评", "客服态度太差"]
    began = time.perf_counter()
    latencies = []
    for i, customer in enumerate(customers):
        t0 = time.perf_counter()
        async with transaction(sessions) as s:
            await tickets.open_ticket(s, policy=policy, customer_id=customer.id or 0, description=texts[i % 4],
                                      actor=Actor.system("bench"), channel="webchat")  # fmt: skip
        latencies.append(time.perf_counter() - t0)
    open_elapsed = time.perf_counter() - began
    latencies.sort()

    clock.moment = datetime(2026, 12, 20, 2, 0, tzinfo=UTC)  # everything long past due
    engines = [make_engine(url), make_engine(url)]
    began = time.perf_counter()
    results = await asyncio.gather(*(sweep(make_session_factory(e), policy, batch=count * 2) for e in engines))
    sweep_elapsed = time.perf_counter() - began
    for e in engines:
        await e.dispose()
    async with sessions() as s:
        escalations = (await s.exec(select(func.count()).where(TicketEvent.kind == "escalated"))).one()
    await engine.dispose()
    return {
        "tickets": count,
        "open_per_s": round(count / open_elapsed, 1),
        "open_p50_ms": round(statistics.median(latencies) * 1000, 2),
        "open_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        "sweep_s": round(sweep_elapsed, 2),
        "sweep_tickets_per_s": round(count / sweep_elapsed, 1),
        "escalations": int(escalations),
        "expected_escalations": 2 * count,  # first-response + resolution breach, once each
        "sweeper_split": [r.escalated for r in results],
    }


async def _pg_scratch(base: str) -> tuple[str, Any]:
    import uuid

    import asyncpg
    from sqlalchemy.engine import make_url

    u = make_url(base)
    name = f"huike_bench_tickets_{uuid.uuid4().hex[:6]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(host=u.host, port=u.port or 5432, user=u.username, password=u.password,
                                     database=u.database)  # fmt: skip
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    await admin(f'CREATE DATABASE "{name}"')
    return u.set(database=name).render_as_string(hide_password=False), lambda: admin(
        f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    )


async def main() -> None:
    rows: list[tuple[str, dict[str, Any]]] = []
    cal = bench_calendar()
    rows.append(("add_business_time", cal))
    pg = os.environ.get("HUIKE_BENCH_DATABASE_URL")
    if pg:
        url, drop = await _pg_scratch(pg)
        try:
            db = await bench_db(url)
        finally:
            await drop()
        label = "postgresql"
    else:
        with tempfile.TemporaryDirectory() as tmp:
            db = await bench_db(f"sqlite+aiosqlite:///{tmp}/bench.db")
        label = "sqlite"
    rows.append((f"tickets ({label})", {k: v for k, v in db.items() if k != "sweeper_split"}))
    report("tickets", rows, {"calendar_p50_us": cal["p50_us"], "calendar_p99_us": cal["p99_us"], "db": label, **db})


if __name__ == "__main__":
    import logging

    logging.disable(logging.WARNING)
    asyncio.run(main())
