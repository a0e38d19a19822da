"""One customer across channels: merge by WeChat unionid, verified phone or explicit binding — and undo.

`merge_customers` moves every row keyed by the source customer (identities, conversations,
messages, orders, tags, tickets, surveys … any table with a `customer_id` column) to the target,
fills the target's empty profile fields from the source, and keeps a `MergeRecord` of exactly
what moved, so `undo_merge` can put it all back. Both are audited.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import ChannelIdentity, Customer, utcnow
from models.scrm import MergeRecord
from scrm.audit import Actor, record_audit
from scrm.errors import Conflict, NotFound, ValidationFailed

PROFILE_FIELDS = ("name", "phone", "gender", "birthday", "region", "birthday_calendar", "birth_month",
                  "birth_day", "member_level")  # fmt: skip
NOT_MOVED = {"customer", "customervalue", "customerinsight"}  # the rows themselves / recomputed nightly


def _movable_tables() -> list[sa.Table]:
    return [t for t in SQLModel.metadata.sorted_tables if "customer_id" in t.c and t.name not in NOT_MOVED]


def _key_columns(table: sa.Table) -> list[sa.Column[Any]]:
    """How a row is identified in the merge record: its `id`, else its other primary-key columns."""
    if "id" in table.c:
        return [table.c.id]
    return [c for c in table.primary_key.columns if c.name != "customer_id"]


def _conflict_free(table: sa.Table, target_id: int) -> Any:
    """Rows that would break a unique constraint on the target (same tag, same consent …) stay behind."""
    conditions = []
    uniques: list[list[str]] = [
        [c.name for c in uc.columns]
        for uc in table.constraints
        if isinstance(uc, sa.UniqueConstraint | sa.PrimaryKeyConstraint)
    ]
    for cols in uniques:
        if "customer_id" not in cols or cols == ["customer_id"]:
            continue
        other = table.alias("other")
        match = [other.c.customer_id == target_id] + [other.c[c] == table.c[c] for c in cols if c != "customer_id"]
        conditions.append(~sa.exists().where(*match))
    return sa.and_(sa.true(), *conditions)


async def _live(session: AsyncSession, customer_id: int) -> Customer:
    customer = await session.get(Customer, customer_id, with_for_update=True)
    if customer is None:
        raise NotFound(f"客户 {customer_id} 不存在")
    if customer.merged_into_id is not None:
        raise Conflict(f"客户 {customer_id} 已合并到 {customer.merged_into_id}")
    if customer.erased_at is not None:
        raise Conflict(f"客户 {customer_id} 已删除个人信息")
    return customer


async def merge_customers(
    session: AsyncSession, *, source_id: int, target_id: int, actor: Actor, reason: str = "explicit"
) -> MergeRecord:
    """Merge `source_id` into `target_id` (the target survives). Returns the merge record."""
    if source_id == target_id:
        raise ValidationFailed("不能把客户合并到自己")
    source = await _live(session, source_id)
    target = await _live(session, target_id)
    moved: dict[str, list[Any]] = {}
    for table in _movable_tables():
        keys = _key_columns(table)
        rows = (
            await session.execute(
                sa.select(*keys).where(table.c.customer_id == source_id, _conflict_free(table, target_id))
            )
        ).all()
        if not rows:
            continue
        values = [r[0] if len(keys) == 1 else list(r) for r in rows]
        moved[table.name] = values
        await session.execute(
            sa.update(table)
            .where(table.c.customer_id == source_id, _key_match(keys, values))
            .values(customer_id=target_id)
        )
    filled: dict[str, Any] = {}
    for field in PROFILE_FIELDS:
        if getattr(target, field) in (None, "") and getattr(source, field) not in (None, ""):
            if field == "birthday_calendar":
                continue
            filled[field] = getattr(target, field)
            setattr(target, field, getattr(source, field))
            if field == "birth_month":
                filled["birthday_calendar"] = target.birthday_calendar
                target.birthday_calendar = source.birthday_calendar
    if source.points:
        filled["points_added"] = source.points
        target.points += source.points
    added_attrs = [k for k in source.attributes if k not in target.attributes]
    if added_attrs:
        filled["attributes_added"] = added_attrs
        target.attributes = {**target.attributes, **{k: source.attributes[k] for k in added_attrs}}
    if source.phone_verified and not target.phone_verified and "phone" in filled:
        filled["phone_verified"] = False
        target.phone_verified = True
    if source.last_active_at and (target.last_active_at is None or source.last_active_at > target.last_active_at):
        filled["last_active_at"] = target.last_active_at.isoformat() if target.last_active_at else None
        target.last_active_at = source.last_active_at
    source.merged_into_id = target_id
    record = MergeRecord(source_id=source_id, target_id=target_id, reason=reason, moved=moved,
                         filled=_jsonable(filled), actor=actor.name)  # fmt: skip
    session.add_all([source, target, record])
    await session.flush()
    record_audit(
        session, actor=actor, action="customer.merge", object_type="customer", object_id=target_id,
        after={"merge_id": record.id, "source_id": source_id, "reason": reason,
               "moved": {k: len(v) for k, v in moved.items()}},
    )  # fmt: skip
    return record


def _key_match(keys: list[sa.Column[Any]], values: list[Any]) -> Any:
    if len(keys) == 1:
        return keys[0].in_(values)
    return sa.tuple_(*keys).in_([tuple(v) for v in values])


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in data.items()}


async def undo_merge(session: AsyncSession, *, merge_id: int, actor: Actor) -> MergeRecord:
    """Put back everything a merge moved and restore the target's profile fields."""
    record = await session.get(MergeRecord, merge_id, with_for_update=True)
    if record is None:
        raise NotFound(f"合并记录 {merge_id} 不存在")
    if record.undone_at is not None:
        raise Conflict("该合并已撤销")
    source = await session.get(Customer, record.source_id)
    target = await _live(session, record.target_id)
    assert source is not None
    tables = {t.name: t for t in _movable_tables()}
    for name, values in record.moved.items():
        table = tables.get(name)
        if table is None or not values:
            continue
        keys = _key_columns(table)
        await session.execute(
            sa.update(table)
            .where(table.c.customer_id == record.target_id, _key_match(keys, values))
            .values(customer_id=record.source_id)
        )
    filled = dict(record.filled)
    target.points -= int(filled.pop("points_added", 0))
    for key in filled.pop("attributes_added", []):
        target.attributes = {k: v for k, v in target.attributes.items() if k != key}
    if "last_active_at" in filled:
        old = filled.pop("last_active_at")
        target.last_active_at = datetime.fromisoformat(old) if old else None
    for field, old_value in filled.items():
        if field == "birthday" and old_value:
            old_value = datetime.fromisoformat(old_value).date()
        setattr(target, field, old_value)
    source.merged_into_id = None
    record.undone_at = utcnow()
    session.add_all([source, target, record])
    record_audit(session, actor=actor, action="customer.unmerge", object_type="customer",
                 object_id=record.target_id, after={"merge_id": merge_id, "source_id": record.source_id})  # fmt: skip
    await session.flush()
    return record


async def merge_by_unionid(session: AsyncSession, *, unionid: str, actor: Actor) -> list[MergeRecord]:
    """All live customers whose identities share `unionid` become one (the oldest survives)."""
    if not unionid:
        return []
    ids = (
        await session.exec(
            select(Customer.id)
            .join(ChannelIdentity, col(ChannelIdentity.customer_id) == Customer.id)
            .where(col(ChannelIdentity.unionid) == unionid, col(Customer.merged_into_id).is_(None))
            .distinct()
            .order_by(col(Customer.id))
        )
    ).all()
    customer_ids = [i for i in ids if i is not None]
    if len(customer_ids) < 2:
        return []
    target, *others = customer_ids
    return [
        await merge_customers(session, source_id=o, target_id=target, actor=actor, reason="unionid") for o in others
    ]


async def bind_phone(
    session: AsyncSession, *, customer_id: int, phone: str, verified: bool, actor: Actor
) -> MergeRecord | None:
    """Store a phone; a *verified* phone shared with another verified customer merges them (oldest survives)."""
    phone = phone.strip()
    if not phone.isdigit() or not 6 <= len(phone) <= 20:
        raise ValidationFailed("手机号格式不正确")
    customer = await _live(session, customer_id)
    customer.phone = phone
    customer.phone_verified = customer.phone_verified or verified
    session.add(customer)
    await session.flush()
    if not verified:
        return None
    other = (
        await session.exec(
            select(Customer)
            .where(col(Customer.phone) == phone, col(Customer.phone_verified), col(Customer.id) != customer_id,
                   col(Customer.merged_into_id).is_(None), col(Customer.erased_at).is_(None))
            .order_by(col(Customer.id))
        )
    ).first()  # fmt: skip
    if other is None or other.id is None:
        return None
    source_id, target_id = max(customer_id, other.id), min(customer_id, other.id)
    return await merge_customers(session, source_id=source_id, target_id=target_id, actor=actor, reason="phone")


async def bind_identity(
    session: AsyncSession, *, identity_id: int, customer_id: int, actor: Actor
) -> MergeRecord | None:
    """Explicit binding: the identity's customer is merged into `customer_id` (an agent confirmed them)."""
    identity = await session.get(ChannelIdentity, identity_id)
    if identity is None:
        raise NotFound(f"渠道身份 {identity_id} 不存在")
    if identity.customer_id == customer_id:
        return None
    return await merge_customers(
        session, source_id=identity.customer_id, target_id=customer_id, actor=actor, reason="explicit"
    )


async def resolve_live_id(session: AsyncSession, customer_id: int) -> int:
    """Follow merge pointers to the surviving customer."""
    seen: set[int] = set()
    current = customer_id
    while current not in seen:
        seen.add(current)
        customer = await session.get(Customer, current)
        if customer is None:
            raise NotFound(f"客户 {customer_id} 不存在")
        if customer.merged_into_id is None:
            return current
        current = customer.merged_into_id
    raise Conflict("合并链存在循环")
