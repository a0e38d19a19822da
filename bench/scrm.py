"""SCRM at scale: 1,000,000 customers on PostgreSQL (100,000 on SQLite) with orders and interactions.

Times a full RFM + member level + lifecycle recompute, one tag rule, one segment count and one
birthday care run (ledger rows claimed, guards applied, messages handed to the outbox).
Targets on PostgreSQL: segment count < 0.5 s, birthday run < 5 s, RFM recompute < 30 s.

Data is generated inside the database (generate_series on PostgreSQL, a recursive CTE on SQLite),
so loading a million customers takes seconds. BENCH_QUICK=1 uses 50,000 / 20,000 customers.
PostgreSQL: HUIKE_BENCH_PG_URL (default postgresql+asyncpg://postgres@127.0.0.1:5432/postgres);
skipped when unreachable. BENCH_SCRM_DB=sqlite|postgresql runs one database only.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import make_url

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
from _common import QUICK, ROOT, reachable, report  # noqa: E402

# this file is called scrm.py: keep the bench directory off the path so `import scrm` finds the package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH_DIR]
sys.path.insert(0, str(ROOT))
from tests import dbutil  # noqa: E402

PG_URL = os.environ.get("HUIKE_BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
PG_CUSTOMERS = 50_000 if QUICK else 1_000_000
SQLITE_CUSTOMERS = 20_000 if QUICK else 100_000
SH = ZoneInfo("Asia/Shanghai")
BIRTHDAY = date(2026, 11, 24)
NOW = datetime.combine(BIRTHDAY, dtime(10), tzinfo=SH).astimezone(UTC)
TARGETS = {"segment_s": 0.5, "birthday_s": 5.0, "rfm_s": 30.0}
SEGMENT = {
    "all": [{"attr": "value.tier", "op": "eq", "value": "高价值"}, {"attr": "region", "op": "eq", "value": "上海"}]
}
TAG_RULE = {"orders": {"sum": {"gte": 2000}, "within_days": 365}}
BIRTHDAY_TEXT = "{{ name }}，生日快乐！{{ level }}专享生日礼已到账。"
REGIONS = ["上海", "北京", "广州", "深圳", "杭州", "成都", "武汉", "南京"]

PG_LOAD = [
    "SELECT setseed(0.42)",
    """
    INSERT INTO customer (name, phone, gender, birthday, birthday_calendar, birth_month, birth_day, region,
                          created_at, last_active_at, attributes, phone_verified, lifecycle_stage, points)
    SELECT '客户' || i, (13000000000 + i)::text, CASE WHEN i % 2 = 0 THEN 'female' ELSE 'male' END,
           b.d, CASE WHEN i % 20 = 0 THEN 'lunar' ELSE 'solar' END,
           CASE WHEN i % 20 = 0 THEN 1 + (i / 20) % 12 ELSE extract(month FROM b.d)::int END,
           CASE WHEN i % 20 = 0 THEN 1 + (i / 240) % 29 ELSE extract(day FROM b.d)::int END,
           (ARRAY['上海','北京','广州','深圳','杭州','成都','武汉','南京'])[1 + i % 8],
           CAST(:now AS timestamptz) - make_interval(days => 400 + i % 600),
           CAST(:now AS timestamptz) - make_interval(mins => floor(power(random(), 2) * 400 * 1440)::int),
           '{}'::jsonb, false, '潜在', (i * 37) % 30000
    FROM generate_series(1, :n) AS i,
         LATERAL (SELECT date '1960-01-01' + ((i::bigint * 7919) % 16000)::int AS d) AS b
    """,
    """
    INSERT INTO channelidentity (customer_id, channel, app_id, external_id, status, created_at, last_inbound_at)
    SELECT id, 'wechat_oa', 'default', 'oa-' || id, 'active', created_at, last_active_at FROM customer
    """,
    """
    INSERT INTO customer_order (order_no, amount, status, ordered_at, items, source, customer_id, created_at)
    SELECT 'B' || j, round((20 + random() * 980)::numeric, 2),
           CASE WHEN random() < 0.05 THEN 'refunded' ELSE 'paid' END,
           CAST(:now AS timestamptz) - make_interval(mins => floor(power(random(), 1.5) * 730 * 1440)::int),
           '[]'::jsonb, 'bench',
           1 + floor(power(random(), 1.7) * :n)::int, CAST(:now AS timestamptz)
    FROM generate_series(1, :orders) AS j
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
    SELECT c.id, c.customer_id, 'wechat_oa', 'in', 'customer', 'text', '你好，请问什么时候发货', '{}'::jsonb,
           'bm' || c.id || '-' || k, 'handled', c.last_message_at - make_interval(hours => k)
    FROM conversation c, generate_series(0, 1) AS k
    """,
    """
    INSERT INTO customerevent (customer_id, kind, name, created_at)
    SELECT 1 + floor(random() * :n)::int, 'topic',
           (ARRAY['退款','物流配送','发票','会员积分'])[1 + floor(random() * 4)::int],
           CAST(:now AS timestamptz) - make_interval(mins => floor(random() * 60 * 1440)::int)
    FROM generate_series(1, :n / 2)
    """,
    "ANALYZE",
]

# SQLite has no generate_series by default: a recursive CTE counts instead. Times are stored the way
# SQLAlchemy stores them ("YYYY-MM-DD HH:MM:SS.ffffff", UTC).
_SEQ = "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < {n}) "
_TS = "strftime('%Y-%m-%d %H:%M:%f000', :now, {offset})"
# minutes ago, skewed towards recent: (uniform * uniform) * 400 days
_SQUARED_MINUTES = (
    "'-' || CAST((abs(random()) % 1000000) * (abs(random()) % 1000000) / 1e12 * 576000 AS INTEGER) || ' minutes'"
)
SQLITE_LOAD = [
    _SEQ.format(n=":n")
    + """
    INSERT INTO customer (name, phone, gender, birthday, birthday_calendar, birth_month, birth_day, region,
                          created_at, last_active_at, attributes, phone_verified, lifecycle_stage, points)
    SELECT '客户' || i, CAST(13000000000 + i AS TEXT), CASE WHEN i % 2 = 0 THEN 'female' ELSE 'male' END,
           date('1960-01-01', '+' || ((i * 7919) % 16000) || ' days'),
           CASE WHEN i % 20 = 0 THEN 'lunar' ELSE 'solar' END,
           CASE WHEN i % 20 = 0 THEN 1 + (i / 20) % 12
                ELSE CAST(strftime('%m', date('1960-01-01', '+' || ((i * 7919) % 16000) || ' days')) AS INTEGER) END,
           CASE WHEN i % 20 = 0 THEN 1 + (i / 240) % 29
                ELSE CAST(strftime('%d', date('1960-01-01', '+' || ((i * 7919) % 16000) || ' days')) AS INTEGER) END,
           CASE i % 8 WHEN 0 THEN '上海' WHEN 1 THEN '北京' WHEN 2 THEN '广州' WHEN 3 THEN '深圳'
                      WHEN 4 THEN '杭州' WHEN 5 THEN '成都' WHEN 6 THEN '武汉' ELSE '南京' END,
           """
    + _TS.format(offset="'-' || (400 + i % 600) || ' days'")
    + ", "
    + _TS.format(offset=_SQUARED_MINUTES)
    + """,
           '{}', 0, '潜在', (i * 37) % 30000
    FROM seq
    """,
    """
    INSERT INTO channelidentity (customer_id, channel, app_id, external_id, status, created_at, last_inbound_at)
    SELECT id, 'wechat_oa', 'default', 'oa-' || id, 'active', created_at, last_active_at FROM customer
    """,
    _SEQ.format(n=":orders")
    + """
    INSERT INTO customer_order (order_no, amount, status, ordered_at, items, source, customer_id, created_at)
    SELECT 'B' || i, round(20 + (abs(random()) % 98000) / 100.0, 2),
           CASE WHEN abs(random()) % 20 = 0 THEN 'refunded' ELSE 'paid' END,
           """
    + _TS.format(offset="'-' || (abs(random()) % (730 * 1440)) || ' minutes'")
    + """, '[]', 'bench',
           1 + CAST(((abs(random()) % 1000000) / 1e6) * ((abs(random()) % 1000000) / 1e6) * :n AS INTEGER), :now
    FROM seq
    """,
    """
    INSERT INTO conversation (customer_id, channel, app_id, external_id, state, flow_state, fallback_count,
                              created_at, last_message_at)
    SELECT id, 'wechat_oa', 'default', 'oa-' || id, 'bot', '{}', 0, last_active_at, last_active_at
    FROM customer WHERE id % 2 = 0
    """,
    """
    INSERT INTO message (conversation_id, customer_id, channel, direction, sender, kind, text, payload,
                         channel_msg_id, state, created_at)
    SELECT c.id, c.customer_id, 'wechat_oa', 'in', 'customer', 'text', '你好，请问什么时候发货', '{}',
           'bm' || c.id || '-' || k.k, 'handled', c.last_message_at
    FROM conversation c, (SELECT 0 AS k UNION ALL SELECT 1) k
    """,
    _SEQ.format(n=":half")
    + """
    INSERT INTO customerevent (customer_id, kind, name, created_at)
    SELECT 1 + abs(random()) % :n, 'topic',
           CASE abs(random()) % 4 WHEN 0 THEN '退款' WHEN 1 THEN '物流配送' WHEN 2 THEN '发票' ELSE '会员积分' END,
           """
    + _TS.format(offset="'-' || (abs(random()) % (60 * 1440)) || ' minutes'")
    + """
    FROM seq
    """,
    "ANALYZE",
]


async def _load(factory: Any, statements: list[str], params: dict[str, Any]) -> float:
    started = time.perf_counter()
    async with factory() as session, session.begin():
        for stmt in statements:
            text = sa.text(stmt)
            used = {k: v for k, v in params.items() if f":{k}" in stmt}
            await session.execute(text, used)
    return time.perf_counter() - started


async def _timed(label: str, work: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = await work()
    elapsed = time.perf_counter() - started
    print(f"  {label}: {elapsed:.2f} s", flush=True)
    return elapsed, result


async def bench_database(url: str, customers: int, kind: str) -> dict[str, Any]:
    from sqlalchemy.ext.asyncio import create_async_engine

    from scrm import care, segments, tags, value
    from scrm.audit import Actor
    from scrm.db import make_engine, make_session_factory

    print(f"== {kind}: {customers:,} customers", flush=True)
    await asyncio.to_thread(dbutil.migrate, url)
    # whole-base statements run longer than the app's 30 s per-statement client timeout
    engine = make_engine(url) if kind == "sqlite" else create_async_engine(url, connect_args={"command_timeout": None})
    factory = make_session_factory(engine)
    try:
        statements = PG_LOAD if kind == "postgresql" else SQLITE_LOAD
        now_param: Any = NOW if kind == "postgresql" else NOW.strftime("%Y-%m-%d %H:%M:%S")
        params = {"n": customers, "orders": customers * 2, "half": customers // 2, "now": now_param}
        load_s = await _load(factory, statements, params)
        print(f"  load: {load_s:.1f} s", flush=True)
        async with factory() as session:
            counts = {
                t: (await session.execute(sa.text(f"SELECT count(*) FROM {t}"))).scalar_one()
                for t in ("customer", "customer_order", "message", "customerevent")
            }
        print(f"  rows: {counts}", flush=True)
        calibration = None
        if kind == "postgresql":  # a fixed CPU-bound query: ~0.4 s on an idle 2-core machine
            async with factory() as session:
                started = time.perf_counter()
                await session.execute(sa.text("SELECT count(*) FROM generate_series(1, 5000000)"))
                calibration = round(time.perf_counter() - started, 2)
            print(f"  calibration (count of 5M generated rows): {calibration} s", flush=True)

        async def recompute() -> Any:
            async with factory() as session, session.begin():
                return await value.recompute_all(session, now=NOW)

        rfm_s, rfm = await _timed("RFM + levels + lifecycle recompute (first: everyone classified)", recompute)
        if kind == "postgresql":
            # what autovacuum does after a mass update; without it the next scans read ~900k dead rows
            async with engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(sa.text("VACUUM ANALYZE customer, customervalue, lifecycleevent"))

        async def next_day() -> Any:
            async with factory() as session, session.begin():
                return await value.recompute_all(session, now=NOW + timedelta(days=1))

        rfm_next_s, rfm_next = await _timed("RFM + levels + lifecycle recompute (next night)", next_day)

        async def tag_rule() -> Any:
            async with factory() as session, session.begin():
                rule = await tags.save_tag_rule(session, name="bench-高消费", tag_name="高消费", conditions=TAG_RULE,
                                                actor=Actor.system("bench"))  # fmt: skip
                return await tags.apply_tag_rule(session, rule, now=NOW)

        tag_s, tag_result = await _timed("tag rule (orders sum >= 2000 in 365 days)", tag_rule)
        async with factory() as session, session.begin():
            segment = await segments.save_segment(session, name="高价值上海", conditions=SEGMENT,
                                                  actor=Actor.system("bench"))  # fmt: skip
        segment_times = []
        count = 0
        for _ in range(3):
            async with factory() as session:
                t, count = await _timed(
                    "segment count (高价值 ∧ 上海)", lambda s=session: segments.segment_count(s, segment, now=NOW)
                )
            segment_times.append(t)
        async with factory() as session, session.begin():
            rule = await care.save_care_rule(
                session,
                data={"name": "bench-生日", "kind": "birthday", "template": BIRTHDAY_TEXT,
                      "wechat_template": {"template_id": "TPL-B", "data": {"first": "{{ name }}生日快乐"}}},
                actor=Actor.system("bench"),
            )  # fmt: skip
        birthday_s, run = await _timed(
            f"birthday care run for {BIRTHDAY}", lambda: care.run_rule(factory, rule.id or 0, day=BIRTHDAY, now=NOW)
        )
        again_s, again = await _timed("same run again (ledger: nothing new)", lambda: care.run_rule(
            factory, rule.id or 0, day=BIRTHDAY, now=NOW))  # fmt: skip
        async with factory() as session:
            ledger = (await session.execute(sa.text("SELECT count(*) FROM caredelivery"))).scalar_one()
            outbox = (await session.execute(sa.text("SELECT count(*) FROM outboxmessage"))).scalar_one()
        assert again.claimed == 0 and ledger == run.claimed, "a second run must not claim again"
        return {
            "customers": counts["customer"],
            "orders": counts["customer_order"],
            "messages": counts["message"],
            "load_s": round(load_s, 1),
            "calibration_s": calibration,
            "rfm_s": round(rfm_s, 2),
            "stage_changes": rfm.stage_changes,
            "rfm_next_night_s": round(rfm_next_s, 2),
            "stage_changes_next_night": rfm_next.stage_changes,
            "tag_rule_s": round(tag_s, 2),
            "tagged": tag_result.matching,
            "segment_s": round(min(segment_times), 3),
            "segment_count": count,
            "birthday_s": round(birthday_s, 2),
            "birthday_ledger_rows": ledger,
            "birthday_outbox_rows": outbox,
            "birthday_outcomes": run.outcomes,
            "birthday_rerun_s": round(again_s, 2),
        }
    finally:
        await engine.dispose()


async def main() -> None:
    figures: dict[str, Any] = {"quick": QUICK}
    rows: list[tuple[str, dict[str, Any]]] = []
    only = os.environ.get("BENCH_SCRM_DB", "both")  # sqlite | postgresql | both
    if only in ("both", "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            sqlite = await bench_database(f"sqlite+aiosqlite:///{tmp}/scrm-bench.db", SQLITE_CUSTOMERS, "sqlite")
        rows.append(("sqlite", {k: v for k, v in sqlite.items() if k != "birthday_outcomes"}))
        figures["sqlite"] = sqlite
    u = make_url(PG_URL)
    if only == "sqlite":
        pass
    elif reachable(u.host or "127.0.0.1", u.port or 5432):
        name = f"huike_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        await dbutil.pg_admin(PG_URL, f'CREATE DATABASE "{name}"')
        try:
            pg = await bench_database(u.set(database=name).render_as_string(hide_password=False), PG_CUSTOMERS,
                                      "postgresql")  # fmt: skip
        finally:
            await dbutil.pg_admin(PG_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        rows.append(("postgresql", {k: v for k, v in pg.items() if k != "birthday_outcomes"}))
        figures["postgresql"] = pg
        figures["targets_pg"] = TARGETS
        figures["targets_met"] = all(pg[k] < limit for k, limit in TARGETS.items()) if not QUICK else None
        figures["load_average"] = round(os.getloadavg()[0], 1)  # the machine is shared: read figures with this
    else:
        print(f"PostgreSQL not reachable at {u.host}:{u.port}: skipped", flush=True)
    report("scrm", rows, figures)


if __name__ == "__main__":
    asyncio.run(main())
