"""Customer insight at scale on PostgreSQL: 1,000,000 customers and 5,000,000 orders with line items.

Times each step of the nightly insight run (read, churn fit + scoring, personas, write, product rules)
and one complaint spike scan, and reports the peak memory of the process. Data is generated inside
the database (generate_series). BENCH_QUICK=1 uses 20,000 customers / 100,000 orders.
PostgreSQL: HUIKE_BENCH_PG_URL (default postgresql+asyncpg://postgres@127.0.0.1:5432/postgres);
skipped when unreachable.
"""

from __future__ import annotations

import asyncio
import os
import resource
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
from _common import QUICK, ROOT, reachable, report  # noqa: E402

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH_DIR]
sys.path.insert(0, str(ROOT))
from tests import dbutil  # noqa: E402

PG_URL = os.environ.get("HUIKE_BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
CUSTOMERS = 20_000 if QUICK else 1_000_000
ORDERS = 5 * CUSTOMERS
NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)

LOAD = [
    "SELECT setseed(0.42)",
    """
    INSERT INTO customer (name, created_at, last_active_at, attributes, phone_verified, lifecycle_stage, points)
    SELECT '客户' || i, CAST(:now AS timestamptz) - make_interval(days => 400 + i % 600),
           CAST(:now AS timestamptz) - make_interval(mins => floor(power(random(), 2) * 400 * 1440)::int),
           '{}'::jsonb, false, '潜在', 0
    FROM generate_series(1, :n) AS i
    """,
    # orders: skewed customers (some buy often), two related products per basket out of 60
    """
    INSERT INTO customer_order (order_no, amount, status, ordered_at, items, source, customer_id, created_at)
    SELECT 'B' || j, round((20 + random() * 480)::numeric, 2), 'paid',
           CAST(:now AS timestamptz) - make_interval(mins => floor(power(random(), 1.5) * 730 * 1440)::int),
           jsonb_build_array(jsonb_build_object('sku', 'P' || p.a, 'name', '商品' || p.a, 'quantity', 1, 'price', 10),
                             jsonb_build_object('sku', 'P' || p.b, 'name', '商品' || p.b, 'quantity', 1, 'price', 10)),
           'bench', 1 + floor(power(random(), 1.7) * :n)::int, CAST(:now AS timestamptz)
    FROM generate_series(1, :orders) AS j,
         LATERAL (SELECT floor(power(random(), 2) * 60)::int + j * 0 AS a) AS a0,
         LATERAL (SELECT a0.a AS a, (a0.a + 1 + floor(random() * 3)::int) % 60 AS b) AS p
    """,
    """
    INSERT INTO conversation (customer_id, channel, app_id, external_id, state, flow_state, fallback_count,
                              created_at, last_message_at)
    SELECT id, 'wechat_oa', 'default', 'oa-' || id, 'bot', '{}'::jsonb, 0, last_active_at, last_active_at
    FROM customer WHERE id % 2 = 0
    """,
    """
    INSERT INTO message (conversation_id, customer_id, channel, direction, sender, kind, text, payload,
                         channel_msg_id, state, created_at)
    SELECT c.id, c.customer_id, 'wechat_oa', 'in', 'customer', 'text', '你好', '{}'::jsonb,
           'bm' || c.id, 'handled', c.last_message_at
    FROM conversation c
    """,
    """
    INSERT INTO customerevent (customer_id, kind, name, created_at)
    SELECT 1 + floor(random() * :n)::int, 'topic', '退款',
           CAST(:now AS timestamptz) - make_interval(mins => floor(random() * 60 * 1440)::int)
    FROM generate_series(1, :n / 2)
    """,
    """
    INSERT INTO ticket (customer_id, channel, status, version, category_confidence, category_source,
                        severity_reason, skill_group, escalation_level, reopen_count, category, severity, subject,
                        description, created_at, updated_at)
    SELECT 1 + floor(random() * :n)::int, 'wechat_oa', 'new', 1, 0, 'default', '', '', 0, 0,
           (ARRAY['物流配送','商品质量','退款售后'])[1 + floor(random() * 3)::int], 'P3', '投诉', '',
           CAST(:now AS timestamptz) - make_interval(mins => floor(random() * 60 * 1440)::int),
           CAST(:now AS timestamptz)
    FROM generate_series(1, :n / 100)
    """,
    "ANALYZE",
]


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


async def bench(url: str) -> dict[str, Any]:
    from sqlalchemy.ext.asyncio import create_async_engine

    from scrm.db import make_session_factory, transaction
    from scrm.insight.alerts import scan
    from scrm.insight.nightly import run_insight
    from scrm.value import recompute_all

    await asyncio.to_thread(dbutil.migrate, url)
    engine = create_async_engine(url, connect_args={"command_timeout": None})
    factory = make_session_factory(engine)
    try:
        started = time.perf_counter()
        params = {"n": CUSTOMERS, "orders": ORDERS, "now": NOW}
        async with factory() as session, session.begin():
            for stmt in LOAD:
                await session.execute(sa.text(stmt), {k: v for k, v in params.items() if f":{k}" in stmt})
        load_s = round(time.perf_counter() - started, 1)
        print(f"  load: {load_s} s", flush=True)
        started = time.perf_counter()
        async with transaction(factory) as session:
            await recompute_all(session, now=NOW)
        rfm_s = round(time.perf_counter() - started, 1)
        rss_before = _peak_rss_mb()
        result = await run_insight(factory, now=NOW)
        print(f"  insight: {result['seconds']}", flush=True)
        started = time.perf_counter()
        async with transaction(factory) as session:
            alerts = await scan(session, now=NOW)
        scan_s = round(time.perf_counter() - started, 2)
        return {"customers": result["customers"], "orders": ORDERS, "scored": result["scored"],
                "load_s": load_s, "rfm_recompute_s": rfm_s, **{f"{k}_s": v for k, v in result["seconds"].items()},
                "insight_total_s": round(sum(result["seconds"].values()), 1), "spike_scan_s": scan_s,
                "alerts": len(alerts), "rules": result["rules"], "personas": result["personas"],
                "peak_rss_mb_before_insight": rss_before, "peak_rss_mb": _peak_rss_mb()}  # fmt: skip
    finally:
        await engine.dispose()


async def main() -> None:
    u = make_url(PG_URL)
    figures: dict[str, Any] = {"quick": QUICK}
    if not reachable(u.host or "127.0.0.1", u.port or 5432):
        print(f"PostgreSQL not reachable at {u.host}:{u.port}: skipped", flush=True)
        report("insight", [], figures)
        return
    name = f"huike_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    await dbutil.pg_admin(PG_URL, f'CREATE DATABASE "{name}"')
    try:
        print(f"== postgresql: {CUSTOMERS:,} customers, {ORDERS:,} orders", flush=True)
        pg = await bench(u.set(database=name).render_as_string(hide_password=False))
    finally:
        await dbutil.pg_admin(PG_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    figures["postgresql"] = pg
    figures["load_average"] = round(os.getloadavg()[0], 1)
    report("insight", [("postgresql", {k: v for k, v in pg.items() if k != "personas"})], figures)


if __name__ == "__main__":
    asyncio.run(main())
