"""Lifecycle stages 潜在 → 新客 → 成长 / 成熟 → 衰退 → 流失, and 回流, from configurable thresholds.

The stage is computed in SQL for every customer at once from activity (last message or order)
and the order metrics in `customervalue` (scrm.value fills it first). Every change writes a
`LifecycleEvent` (kind "stage"), which care rules of kind "lifecycle" react to.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Customer, utcnow
from models.scrm import CustomerValue, LifecycleEvent
from scrm.audit import Actor, record_audit
from scrm.defaults import LifecycleThresholds, scrm_config
from scrm.errors import NotFound, ValidationFailed

PROSPECT, NEW, GROWING, MATURE, DECLINING, CHURNED, RETURNED = "潜在", "新客", "成长", "成熟", "衰退", "流失", "回流"
STAGES = (PROSPECT, NEW, GROWING, MATURE, DECLINING, CHURNED, RETURNED)


def _later(a: Any, b: Any) -> Any:
    """The later of two nullable timestamps (GREATEST semantics on both databases)."""
    return sa.case(
        (a.is_(None), b),
        (b.is_(None), a),
        (a > b, a),
        else_=b,
    )


def stage_expression(now: datetime, t: LifecycleThresholds) -> Any:
    """SQL CASE giving each customer's stage; reads `customer` joined to `customervalue`."""
    activity = _later(col(Customer.last_active_at), col(CustomerValue.last_order_at))
    churn_cut = now - timedelta(days=t.churn_days)
    decline_cut = now - timedelta(days=t.decline_days)
    return_cut = now - timedelta(days=t.return_days)
    new_cut = now - timedelta(days=t.new_days)
    return sa.case(
        (sa.and_(activity.is_not(None), activity < churn_cut), sa.literal(CHURNED)),
        (sa.and_(activity.is_not(None), activity < decline_cut), sa.literal(DECLINING)),
        (col(Customer.lifecycle_stage) == CHURNED, sa.literal(RETURNED)),
        (
            sa.and_(col(Customer.lifecycle_stage) == RETURNED, col(Customer.lifecycle_changed_at) >= return_cut),
            sa.literal(RETURNED),
        ),
        (col(CustomerValue.order_count) == 0, sa.literal(PROSPECT)),
        (col(CustomerValue.order_count) >= t.mature_orders, sa.literal(MATURE)),
        (
            sa.and_(col(CustomerValue.order_count) == 1, col(CustomerValue.first_order_at) >= new_cut),
            sa.literal(NEW),
        ),
        else_=sa.literal(GROWING),
    )


async def recompute_lifecycle(
    session: AsyncSession,
    *,
    now: datetime | None = None,
    thresholds: LifecycleThresholds | None = None,
    customer_id: int | None = None,
) -> int:
    """Move every customer (or one) to its computed stage; returns how many changed.

    Two statements, set-wise: INSERT the change events, then UPDATE the changed rows.
    """
    now = now or utcnow()
    t = thresholds or scrm_config().lifecycle
    new_stage = stage_expression(now, t)
    where: list[Any] = [col(CustomerValue.customer_id) == Customer.id, col(Customer.lifecycle_stage) != new_stage]
    if customer_id is not None:
        where.append(col(Customer.id) == customer_id)
    events = sa.select(
        col(Customer.id),
        sa.literal("stage", sa.String),
        col(Customer.lifecycle_stage),
        new_stage,
        sa.literal(now, sa.DateTime(timezone=True)),
    ).where(*where)
    inserted = await session.execute(
        sa.insert(LifecycleEvent).from_select(["customer_id", "kind", "from_value", "to_value", "created_at"], events)
    )
    changed = inserted.rowcount or 0  # type: ignore[attr-defined]
    if changed:
        await session.execute(
            sa.update(Customer)
            .where(*where)
            .values(lifecycle_stage=new_stage, lifecycle_changed_at=now)
            .execution_options(synchronize_session=False)
        )
    return int(changed)


async def set_stage(session: AsyncSession, *, customer_id: int, stage: str, actor: Actor) -> LifecycleEvent:
    """An operator sets a stage by hand (audited); the next recompute may move it again."""
    if stage not in STAGES:
        raise ValidationFailed(f"未知生命周期阶段 {stage}")
    customer = await session.get(Customer, customer_id)
    if customer is None:
        raise NotFound(f"客户 {customer_id} 不存在")
    event = LifecycleEvent(customer_id=customer_id, kind="stage", from_value=customer.lifecycle_stage,
                           to_value=stage)  # fmt: skip
    record_audit(session, actor=actor, action="customer.stage", object_type="customer", object_id=customer_id,
                 before={"stage": customer.lifecycle_stage}, after={"stage": stage})  # fmt: skip
    customer.lifecycle_stage, customer.lifecycle_changed_at = stage, utcnow()
    session.add(event)
    await session.flush()
    return event


async def stage_history(session: AsyncSession, customer_id: int) -> list[LifecycleEvent]:
    stmt = (
        select(LifecycleEvent)
        .where(col(LifecycleEvent.customer_id) == customer_id)
        .order_by(col(LifecycleEvent.created_at), col(LifecycleEvent.id))
    )
    return list((await session.exec(stmt)).all())


async def stage_counts(session: AsyncSession) -> dict[str, int]:
    stmt = (
        sa.select(col(Customer.lifecycle_stage), sa.func.count())
        .where(col(Customer.merged_into_id).is_(None), col(Customer.erased_at).is_(None))
        .group_by(col(Customer.lifecycle_stage))
    )
    rows = (await session.execute(stmt)).all()
    return {stage: int(n) for stage, n in rows}
