"""The nightly insight run: churn and expected value, personas, product rules — read and written set-wise.

Reading: one grouped query over paid orders (purchase days in Beijing time) and one over the customer
base with its message, topic and ticket counts, streamed into numpy arrays. Fitting happens on those
arrays (BG/NBD, Gamma-Gamma, the repeat classifier, k-means). Writing: `customerinsight` is rebuilt in
one go (COPY on PostgreSQL). `now` is a parameter, so runs and tests are reproducible.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Customer, Direction, Message
from models.insight import CustomerInsight, Persona, ProductRule
from models.scrm import CustomerEvent, CustomerValue, Order, OrderStatus
from models.ticket import Ticket
from scrm.db import SessionFactory, transaction
from scrm.insight import churn, crosssell, personas
from scrm.value import dialect_name

UNIX_JULIAN = 2440587.5
BEIJING = 8 / 24
HORIZON = churn.HORIZON_DAYS
WECHAT_CHANNELS = ("wechat_oa", "wecom", "wechat_kf")
RULE_BASKETS = 200_000  # the most recent orders with line items that the rules are mined from


def _day(session: AsyncSession, ts: Any) -> Any:
    """Days since 1970-01-01 in Beijing time, as an integer, on both databases."""
    if dialect_name(session) == "postgresql":
        return sa.cast(sa.func.floor(sa.func.extract("epoch", ts) / 86400 + BEIJING), sa.Integer)
    return sa.cast(sa.func.floor(sa.func.julianday(ts) - UNIX_JULIAN + BEIJING), sa.Integer)


def _today(now: datetime) -> int:
    return int(np.floor(now.timestamp() / 86400 + BEIJING))


async def _purchase_days(session: AsyncSession, now: datetime) -> dict[str, np.ndarray]:
    """Per customer with paid orders: first/last purchase day, purchase days and spend, overall and up to
    HORIZON days ago (the classifier's training cut)."""
    today = _today(now)
    cut = today - HORIZON
    day = _day(session, Order.ordered_at)
    per_day = (
        sa.select(col(Order.customer_id).label("cid"), day.label("d"), sa.func.sum(Order.amount).label("amount"))
        .where(col(Order.status) == OrderStatus.PAID, col(Order.ordered_at) <= now)
        .group_by(col(Order.customer_id), day)
        .subquery("pd")
    )
    before = per_day.c.d <= cut
    query = sa.select(
        per_day.c.cid,
        sa.func.min(per_day.c.d),
        sa.func.max(per_day.c.d),
        sa.func.count(),
        sa.func.sum(per_day.c.amount),
        sa.func.max(sa.case((before, per_day.c.d))),
        sa.func.count(sa.case((before, 1))),
        sa.func.count(sa.case((sa.not_(before), 1))),
    ).group_by(per_day.c.cid).order_by(per_day.c.cid)
    names = ("cid", "first", "last", "days", "spend", "last_past", "days_past", "days_since")
    arrays = await _matrix(session, query, len(names))
    return {name: arrays[:, i] for i, name in enumerate(names)}


async def _matrix(session: AsyncSession, query: Any, width: int) -> np.ndarray:
    """A float matrix from a streamed query, one partition of Python rows in memory at a time."""
    result = await session.stream(query.execution_options(yield_per=50_000))
    parts = [np.zeros((0, width))]
    async for partition in result.partitions():
        parts.append(np.array([[np.nan if v is None else float(v) for v in r] for r in partition], dtype=np.float64))
    return np.vstack(parts)


async def _stream(session: AsyncSession, query: Any) -> list[tuple[Any, ...]]:
    result = await session.stream(query.execution_options(yield_per=50_000))
    out: list[tuple[Any, ...]] = []
    async for partition in result.partitions():
        out.extend(tuple(r) for r in partition)
    return out


def _summaries(a: dict[str, np.ndarray], today: int) -> tuple[churn.Summary, churn.Summary, np.ndarray]:
    ids = [str(int(c)) for c in a["cid"]]
    now = churn.Summary(ids, a["days"] - 1, (a["last"] - a["first"]) / 7, (today - a["first"]) / 7,
                        np.where(a["days"] > 0, a["spend"] / np.maximum(a["days"], 1), 0.0))  # fmt: skip
    old = a["days_past"] > 0
    cut = today - HORIZON
    past = churn.Summary([i for i, o in zip(ids, old, strict=True) if o], a["days_past"][old] - 1,
                         (a["last_past"][old] - a["first"][old]) / 7, (cut - a["first"][old]) / 7,
                         np.zeros(int(old.sum())))  # fmt: skip
    return now, past, a["days_since"][old] > 0


async def _persona_features(session: AsyncSession, now: datetime) -> tuple[np.ndarray, np.ndarray]:
    since_90, since_365 = now - timedelta(days=90), now - timedelta(days=365)
    msgs = (
        sa.select(col(Message.customer_id).label("cid"), sa.func.count().label("n"),
                  sa.func.count(sa.case((col(Message.channel).in_(WECHAT_CHANNELS), 1))).label("wx"))
        .where(col(Message.direction) == Direction.IN, col(Message.created_at) >= since_90,
               col(Message.created_at) <= now)
        .group_by(col(Message.customer_id)).subquery("m")
    )  # fmt: skip
    topics = (
        sa.select(col(CustomerEvent.customer_id).label("cid"), sa.func.count().label("n"))
        .where(col(CustomerEvent.kind) == "topic", col(CustomerEvent.created_at) >= since_90,
               col(CustomerEvent.created_at) <= now)
        .group_by(col(CustomerEvent.customer_id)).subquery("t")
    )  # fmt: skip
    tickets = (
        sa.select(col(Ticket.customer_id).label("cid"), sa.func.count().label("n"))
        .where(col(Ticket.created_at) >= since_365, col(Ticket.created_at) <= now)
        .group_by(col(Ticket.customer_id)).subquery("k")
    )  # fmt: skip
    query = (
        sa.select(
            col(Customer.id),
            sa.func.coalesce(col(CustomerValue.total_spend), 0),
            sa.func.coalesce(col(CustomerValue.recency_days), 730),
            sa.func.coalesce(col(CustomerValue.order_count), 0),
            sa.func.coalesce(msgs.c.n, 0),
            sa.func.coalesce(topics.c.n, 0),
            sa.func.coalesce(tickets.c.n, 0),
            sa.case((msgs.c.n > 0, sa.cast(msgs.c.wx, sa.Float) / msgs.c.n), else_=0.0),
        )
        .outerjoin(CustomerValue, col(CustomerValue.customer_id) == Customer.id)
        .outerjoin(msgs, msgs.c.cid == Customer.id)
        .outerjoin(topics, topics.c.cid == Customer.id)
        .outerjoin(tickets, tickets.c.cid == Customer.id)
        .where(col(Customer.merged_into_id).is_(None), col(Customer.erased_at).is_(None))
        .order_by(col(Customer.id))
    )
    matrix = await _matrix(session, query, 8)
    data = np.zeros((len(matrix), len(personas.FEATURES)))
    data[:, :7] = matrix[:, 1:]
    data[:, 1] = np.minimum(data[:, 1], 730)
    return matrix[:, 0].astype(np.int64), data


async def _write_insights(session: AsyncSession, rows: Iterable[tuple[Any, ...]]) -> None:
    columns = ["customer_id", "p_alive", "p_repeat_90d", "expected_orders_90d", "expected_spend_90d",
               "churn_risk", "persona", "computed_at"]  # fmt: skip
    if dialect_name(session) == "postgresql":
        await session.execute(sa.text("TRUNCATE customerinsight"))
        raw = await (await session.connection()).get_raw_connection()
        driver: Any = raw.driver_connection  # asyncpg
        await driver.copy_records_to_table("customerinsight", records=rows, columns=columns)
        await session.execute(sa.text("ANALYZE customerinsight"))
        return
    await session.execute(sa.delete(CustomerInsight))
    table = CustomerInsight.__table__  # type: ignore[attr-defined]
    iterator = iter(rows)
    while chunk := list(itertools.islice(iterator, 5000)):
        await session.execute(sa.insert(table), [dict(zip(columns, r, strict=True)) for r in chunk])


def _baskets(items_rows: Iterable[tuple[Any]]) -> list[list[str]]:
    baskets = []
    for (items,) in items_rows:
        names = {str(i.get("name") or i.get("sku") or "").strip() for i in items or [] if isinstance(i, dict)}
        names.discard("")
        if names:
            baskets.append(sorted(names))
    return baskets


async def mine_product_rules(session: AsyncSession, now: datetime) -> int:
    query = (select(col(Order.items)).where(col(Order.status) == OrderStatus.PAID, col(Order.ordered_at) <= now)
             .order_by(col(Order.ordered_at).desc()).limit(RULE_BASKETS))  # fmt: skip
    baskets = _baskets(await _stream(session, query))
    rules = crosssell.mine_rules(baskets) if len(baskets) >= 20 else []
    await session.execute(sa.delete(ProductRule))
    session.add_all(
        ProductRule(antecedent=list(r.antecedent), consequent=r.consequent, support=r.support,
                    confidence=r.confidence, lift=r.lift, computed_at=now)
        for r in rules[:2000]
    )  # fmt: skip
    return len(rules)


async def run_insight(factory: SessionFactory, *, now: datetime) -> dict[str, Any]:
    """One full run; returns counts and seconds per step."""
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        timings[step] = round(time.perf_counter() - clock, 2)
        clock = time.perf_counter()

    async with factory() as session:
        purchases = await _purchase_days(session, now)
        ids, features = await _persona_features(session, now)
        previous = [(p.name, p.centroid) for p in (await session.exec(select(Persona))).all()]
    lap("read")
    today = _today(now)
    scored = purchases["cid"].astype(np.int64)
    # position of each customer (ids ascending) in the scored arrays (cids ascending too), -1 = no orders
    at = np.full(len(ids), -1)
    if len(scored):
        found = np.minimum(np.searchsorted(scored, ids), len(scored) - 1)
        at = np.where(scored[found] == ids, found, -1)
    s: churn.Scores | None = None
    if len(scored):
        cal, past, bought = _summaries(purchases, today)
        s = churn.score(churn.fit(cal, past if len(past.customers) else None, bought), cal)
        features[:, 7] = np.where(at >= 0, s.p_repeat[np.maximum(at, 0)], 0.0)
    lap("churn")
    clustering = personas.cluster(features, previous) if len(ids) >= personas.K else None
    labels = clustering.assign(features) if clustering else np.zeros(len(ids), dtype=np.int64)
    lap("personas")

    def rows() -> Iterator[tuple[Any, ...]]:
        for i, cid in enumerate(ids.tolist()):
            persona = clustering.names[labels[i]] if clustering else None
            j = int(at[i])
            if s is None or j < 0:
                yield (cid, None, None, None, None, None, persona, now)
            else:
                yield (cid, float(s.p_alive[j]), float(s.p_repeat[j]), float(s.expected_orders[j]),
                       float(s.expected_spend[j]), s.risk[j], persona, now)  # fmt: skip

    async with transaction(factory) as session:
        await _write_insights(session, rows())
        if clustering:
            await _save_personas(session, clustering, personas.traits(features, labels, len(clustering.names)),
                                 np.bincount(labels, minlength=len(clustering.names)), now)  # fmt: skip
    lap("write")
    async with transaction(factory) as session:
        n_rules = await mine_product_rules(session, now)
    lap("rules")
    return {"customers": len(ids), "scored": len(scored), "personas": clustering.names if clustering else [],
            "rules": n_rules, "seconds": timings}  # fmt: skip


async def _save_personas(session: AsyncSession, c: personas.Clustering, traits: list[dict[str, float]],
                         sizes: np.ndarray, now: datetime) -> None:  # fmt: skip
    await session.execute(sa.delete(Persona))
    session.add_all(Persona(name=name, size=int(sizes[i]), centroid=[float(v) for v in c.centroids[i]],
                            traits=traits[i], updated_at=now) for i, name in enumerate(c.names))  # fmt: skip
