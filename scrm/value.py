"""Customer value: order metrics, RFM quintile scores, value tiers and member levels — all set-wise in SQL.

`recompute_values` rebuilds `customervalue` with one INSERT … SELECT using window functions:
each of R (latest order), F (order count) and M (spend) scores 1..5 by its rank over the live
customer base (ties share a score; customers without orders score 1). Tiers follow thresholds
from config/scrm.yml. `recompute_all` also refreshes member levels and lifecycle stages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Customer, utcnow
from models.scrm import CustomerValue, LifecycleEvent, Order, OrderStatus
from scrm.defaults import MemberLevel, ScrmConfig, ValueThresholds, scrm_config
from scrm.lifecycle import stage_expression

HIGH, POTENTIAL, GENERAL, LOW = "高价值", "潜力", "一般", "低价值"
TIERS = (HIGH, POTENTIAL, GENERAL, LOW)


def dialect_name(session: AsyncSession) -> str:
    bind = session.bind
    assert bind is not None, "session needs a bound engine"
    return bind.dialect.name


def _quintile(order_by: Any) -> Any:
    """1..5 from the rank over everyone: 1 + 5*(rank-1) // n, integer arithmetic on both databases."""
    rank = sa.func.rank().over(order_by=order_by)
    total = sa.func.count().over()
    return 1 + (5 * (rank - 1)) // total


def _tier(r: Any, f: Any, m: Any, count: Any, v: ValueThresholds) -> Any:
    def at_least(spec: dict[str, int]) -> Any:
        scores = {"r": r, "f": f, "m": m}
        return sa.and_(*(scores[k] >= n for k, n in spec.items()))

    return sa.case(
        (sa.and_(count > 0, at_least(v.high)), sa.literal(HIGH)),
        (sa.and_(count > 0, at_least(v.potential)), sa.literal(POTENTIAL)),
        (sa.and_(count > 0, at_least(v.general)), sa.literal(GENERAL)),
        else_=sa.literal(LOW),
    )


def _days_since(session: AsyncSession, ts: Any, now: datetime) -> Any:
    if dialect_name(session) == "postgresql":
        seconds = sa.func.extract("epoch", sa.literal(now, sa.DateTime(timezone=True)) - ts)
        return sa.cast(sa.func.floor(seconds / 86400), sa.Integer)
    return sa.cast(sa.func.julianday(sa.literal(now.isoformat())) - sa.func.julianday(ts), sa.Integer)


async def recompute_values(
    session: AsyncSession, *, now: datetime | None = None, thresholds: ValueThresholds | None = None
) -> int:
    """Rebuild order metrics + RFM + tier for every live customer; returns the row count."""
    now = now or utcnow()
    v = thresholds or scrm_config().value
    orders = (
        sa.select(
            col(Order.customer_id),
            sa.func.count().label("n"),
            sa.func.sum(Order.amount).label("spend"),
            sa.func.min(Order.ordered_at).label("first_at"),
            sa.func.max(Order.ordered_at).label("last_at"),
        )
        .where(col(Order.status) == OrderStatus.PAID)
        .group_by(col(Order.customer_id))
        .subquery("o")
    )
    count = sa.func.coalesce(orders.c.n, 0)
    spend = sa.func.coalesce(orders.c.spend, 0)
    metrics = (
        sa.select(
            col(Customer.id).label("customer_id"),
            count.label("order_count"),
            spend.label("total_spend"),
            orders.c.first_at.label("first_order_at"),
            orders.c.last_at.label("last_order_at"),
            _quintile(sa.nulls_first(orders.c.last_at.asc())).label("r"),
            _quintile(count.asc()).label("f"),
            _quintile(spend.asc()).label("m"),
        )
        .select_from(Customer)
        .outerjoin(orders, orders.c.customer_id == Customer.id)
        .where(col(Customer.merged_into_id).is_(None), col(Customer.erased_at).is_(None))
        .subquery("mx")
    )
    final = sa.select(
        metrics.c.customer_id,
        metrics.c.order_count,
        metrics.c.total_spend,
        metrics.c.first_order_at,
        metrics.c.last_order_at,
        _days_since(session, metrics.c.last_order_at, now).label("recency_days"),
        metrics.c.r,
        metrics.c.f,
        metrics.c.m,
        _tier(metrics.c.r, metrics.c.f, metrics.c.m, metrics.c.order_count, v).label("tier"),
        sa.literal(now, sa.DateTime(timezone=True)).label("computed_at"),
    )
    postgres = dialect_name(session) == "postgresql"
    secondary = sorted(CustomerValue.__table__.indexes, key=lambda index: str(index.name))  # type: ignore[attr-defined]
    if postgres:
        await session.execute(sa.text("TRUNCATE customervalue"))  # no dead tuples from a full rebuild
        # Building an index once after the load is cheaper than a million index insertions; TRUNCATE
        # already holds the table exclusively until commit, so dropping them here locks nobody out.
        for index in secondary:
            await session.execute(sa.schema.DropIndex(index))
    else:
        await session.execute(sa.delete(CustomerValue))
    columns = ["customer_id", "order_count", "total_spend", "first_order_at", "last_order_at",
               "recency_days", "r", "f", "m", "tier", "computed_at"]  # fmt: skip
    # in key order: primary-key insertions append instead of splitting pages all over the index
    ordered = final.order_by(metrics.c.customer_id)
    result = await session.execute(sa.insert(CustomerValue).from_select(columns, ordered))
    if postgres:
        for index in secondary:
            await session.execute(sa.schema.CreateIndex(index))
        # fresh statistics, or the planner joins a "0-row" table by nested loop in the steps that follow
        await session.execute(sa.text("ANALYZE customervalue"))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _level_case(levels: list[MemberLevel]) -> Any:
    ordered = sorted(levels, key=lambda lv: (lv.min_points, lv.min_spend), reverse=True)
    whens = [
        (
            sa.or_(col(Customer.points) >= lv.min_points, col(CustomerValue.total_spend) >= lv.min_spend),
            sa.literal(lv.name),
        )
        for lv in ordered[:-1]
    ]
    return sa.case(*whens, else_=sa.literal(ordered[-1].name)) if whens else sa.literal(ordered[-1].name)


def _level_rank(levels: list[MemberLevel], column: Any) -> Any:
    ordered = sorted(levels, key=lambda lv: (lv.min_points, lv.min_spend))
    return sa.case({lv.name: i for i, lv in enumerate(ordered)}, value=column, else_=-1)


async def recompute_member_levels(
    session: AsyncSession, *, now: datetime | None = None, levels: list[MemberLevel] | None = None
) -> int:
    """Set each customer's level from points or spend; upgrades write a LifecycleEvent (kind "level")."""
    now = now or utcnow()
    levels = levels if levels is not None else scrm_config().member_levels
    if not levels:
        return 0
    new_level = _level_case(levels)
    where: list[Any] = [
        col(CustomerValue.customer_id) == Customer.id,
        sa.or_(col(Customer.member_level).is_(None), col(Customer.member_level) != new_level),
    ]
    upgrades = sa.select(
        col(Customer.id),
        sa.literal("level", sa.String),
        col(Customer.member_level),
        new_level,
        sa.literal(now, sa.DateTime(timezone=True)),
    ).where(*where, col(Customer.member_level).is_not(None),
            _level_rank(levels, new_level) > _level_rank(levels, Customer.member_level))  # fmt: skip
    await session.execute(
        sa.insert(LifecycleEvent).from_select(["customer_id", "kind", "from_value", "to_value", "created_at"], upgrades)
    )
    result = await session.execute(
        sa.update(Customer).where(*where).values(member_level=new_level)
        .execution_options(synchronize_session=False)
    )  # fmt: skip
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class RecomputeResult:
    customers: int
    stage_changes: int
    level_changes: int  # upgrades (each one a LifecycleEvent of kind "level")
    profiles_updated: int = 0


async def apply_stages_and_levels(session: AsyncSession, *, now: datetime, config: ScrmConfig) -> tuple[int, int, int]:
    """Lifecycle stage and member level for everyone in ONE pass over `customer`.

    Stage changes and level upgrades are recorded first (INSERT … SELECT), then a single UPDATE
    rewrites only the rows whose stage or level changed. Returns (stage events, upgrades, rows updated).
    """
    new_stage = stage_expression(now, config.lifecycle)
    levels = config.member_levels
    joined = col(CustomerValue.customer_id) == Customer.id
    stage_changed = col(Customer.lifecycle_stage) != new_stage
    stage_events = sa.select(
        col(Customer.id),
        sa.literal("stage", sa.String),
        col(Customer.lifecycle_stage),
        new_stage,
        sa.literal(now, sa.DateTime(timezone=True)),
    ).where(joined, stage_changed)
    columns = ["customer_id", "kind", "from_value", "to_value", "created_at"]
    stages = (await session.execute(sa.insert(LifecycleEvent).from_select(columns, stage_events))).rowcount or 0  # type: ignore[attr-defined]
    values: dict[str, Any] = {
        "lifecycle_stage": new_stage,
        "lifecycle_changed_at": sa.case((stage_changed, sa.literal(now, sa.DateTime(timezone=True))),
                                        else_=col(Customer.lifecycle_changed_at)),
    }  # fmt: skip
    changed: Any = stage_changed
    upgrades = 0
    if levels:
        new_level = _level_case(levels)
        level_changed = sa.or_(col(Customer.member_level).is_(None), col(Customer.member_level) != new_level)
        upgrade_events = sa.select(
            col(Customer.id),
            sa.literal("level", sa.String),
            col(Customer.member_level),
            new_level,
            sa.literal(now, sa.DateTime(timezone=True)),
        ).where(
            joined,
            col(Customer.member_level).is_not(None),
            _level_rank(levels, new_level) > _level_rank(levels, Customer.member_level),
        )
        result = await session.execute(sa.insert(LifecycleEvent).from_select(columns, upgrade_events))
        upgrades = result.rowcount or 0  # type: ignore[attr-defined]
        values["member_level"] = new_level
        changed = sa.or_(stage_changed, level_changed)
    update = sa.update(Customer).where(joined, changed).values(**values).execution_options(synchronize_session=False)
    updated = (await session.execute(update)).rowcount or 0  # type: ignore[attr-defined]
    return int(stages), int(upgrades), int(updated)


async def recompute_all(
    session: AsyncSession, *, now: datetime | None = None, config: ScrmConfig | None = None
) -> RecomputeResult:
    """RFM + tiers, then member levels and lifecycle stages — the nightly job (and `bench/scrm.py`)."""
    now = now or utcnow()
    cfg = config or scrm_config()
    if dialect_name(session) == "postgresql":
        # three rank() sorts and two hash joins over the whole base: keep them in memory (this transaction only)
        await session.execute(sa.text("SET LOCAL work_mem = '256MB'"))
        # a handful of one-shot statements: compiling them costs more (~0.7 s) than JIT saves
        await session.execute(sa.text("SET LOCAL jit = off"))
    customers = await recompute_values(session, now=now, thresholds=cfg.value)
    stages, upgrades, updated = await apply_stages_and_levels(session, now=now, config=cfg)
    return RecomputeResult(customers=customers, stage_changes=stages, level_changes=upgrades,
                           profiles_updated=updated)  # fmt: skip


async def tier_counts(session: AsyncSession) -> dict[str, int]:
    rows = (
        await session.execute(sa.select(col(CustomerValue.tier), sa.func.count()).group_by(col(CustomerValue.tier)))
    ).all()
    return {tier: int(n) for tier, n in rows}
