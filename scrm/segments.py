"""Segments: saved rule-DSL conditions (tags, attributes, orders, events …) with live counts and export."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Customer, utcnow
from models.scrm import CareRule, CustomerValue, Segment
from scrm import spreadsheet
from scrm.audit import Actor, record_audit
from scrm.errors import Conflict, NotFound, ValidationFailed
from scrm.privacy import mask_name, mask_phone
from scrm.rules import base_filter, compile_rule, count_matching

EXPORT_COLUMNS = ["id", "name", "phone", "gender", "region", "lifecycle_stage", "member_level", "points",
                  "tier", "order_count", "total_spend", "last_active_at"]  # fmt: skip


async def save_segment(
    session: AsyncSession,
    *,
    name: str,
    conditions: dict[str, Any],
    actor: Actor,
    description: str = "",
    segment_id: int | None = None,
) -> Segment:
    """Create or update a segment; conditions are validated by compiling them (cycles are refused)."""
    name = name.strip()
    if not name:
        raise ValidationFailed("分群名称不能为空")
    if _refers_to(conditions, {name, str(segment_id)} if segment_id else {name}):
        raise ValidationFailed("分群不能引用自己")
    await compile_rule(session, conditions)
    clash = (await session.exec(select(Segment).where(col(Segment.name) == name))).first()
    if clash is not None and clash.id != segment_id:
        raise Conflict(f"分群 {name} 已存在")
    before: dict[str, Any] = {}
    if segment_id is None:
        segment = Segment(name=name, conditions=conditions, description=description)
        session.add(segment)
    else:
        found = await session.get(Segment, segment_id)
        if found is None:
            raise NotFound(f"分群 {segment_id} 不存在")
        segment = found
        before = {"name": segment.name, "conditions": segment.conditions}
        segment.name, segment.conditions, segment.description = name, conditions, description
        segment.updated_at = utcnow()
    await session.flush()
    record_audit(session, actor=actor, action="segment.save", object_type="segment", object_id=segment.id,
                 before=before, after={"name": name, "conditions": conditions})  # fmt: skip
    return segment


def _refers_to(cond: Any, names: set[str]) -> bool:
    if isinstance(cond, dict):
        if "segment" in cond and str(cond["segment"]) in names:
            return True
        return any(_refers_to(v, names) for v in cond.values())
    if isinstance(cond, list):
        return any(_refers_to(v, names) for v in cond)
    return False


async def delete_segment(session: AsyncSession, *, segment_id: int, actor: Actor) -> None:
    segment = await session.get(Segment, segment_id)
    if segment is None:
        raise NotFound(f"分群 {segment_id} 不存在")
    if (await session.exec(select(CareRule.id).where(CareRule.segment_id == segment_id).limit(1))).first():
        raise Conflict("关怀规则正在使用这个分群，请先修改规则")
    await session.delete(segment)
    record_audit(session, actor=actor, action="segment.delete", object_type="segment", object_id=segment_id,
                 before={"name": segment.name, "conditions": segment.conditions})  # fmt: skip


async def get_segment(session: AsyncSession, ref: int | str) -> Segment:
    by_id = isinstance(ref, int) or (str(ref).isascii() and str(ref).isdigit() and len(str(ref)) <= 9)
    stmt = select(Segment).where(col(Segment.id) == int(ref) if by_id else col(Segment.name) == ref)
    segment = (await session.exec(stmt)).first()
    if segment is None:
        raise NotFound(f"分群 {ref} 不存在")
    return segment


async def segment_count(session: AsyncSession, segment: Segment, *, now: datetime | None = None) -> int:
    return await count_matching(session, segment.conditions, now=now)


async def export_rows(
    session: AsyncSession, segment: Segment, *, masked: bool, now: datetime | None = None, chunk: int = 2000
) -> AsyncIterator[dict[str, Any]]:
    """Members of a segment, page by page (keyset on id), masked for roles that don't need personal data."""
    expr = await compile_rule(session, segment.conditions, now=now)
    last_id = 0
    while True:
        stmt = (
            sa.select(Customer, CustomerValue)
            .outerjoin(CustomerValue, col(CustomerValue.customer_id) == Customer.id)
            .where(base_filter(), expr, col(Customer.id) > last_id)
            .order_by(col(Customer.id))
            .limit(chunk)
        )
        rows = (await session.execute(stmt)).all()
        if not rows:
            return
        for customer, value in rows:
            assert customer.id is not None
            last_id = customer.id
            yield {
                "id": customer.id,
                "name": mask_name(customer.name) if masked else (customer.name or ""),
                "phone": mask_phone(customer.phone) if masked else (customer.phone or ""),
                "gender": customer.gender or "",
                "region": customer.region or "",
                "lifecycle_stage": customer.lifecycle_stage,
                "member_level": customer.member_level or "",
                "points": customer.points,
                "tier": value.tier if value else "",
                "order_count": value.order_count if value else 0,
                "total_spend": str(value.total_spend) if value else "0",
                "last_active_at": customer.last_active_at.isoformat() if customer.last_active_at else "",
            }


async def export_csv(session: AsyncSession, segment: Segment, *, masked: bool, actor: Actor) -> str:
    """The whole segment as CSV text (BOM, formula-safe cells: scrm.spreadsheet); audited."""
    rows = [[row[c] for c in EXPORT_COLUMNS] async for row in export_rows(session, segment, masked=masked)]
    record_audit(session, actor=actor, action="segment.export", object_type="segment", object_id=segment.id,
                 after={"rows": len(rows), "masked": masked})  # fmt: skip
    return spreadsheet.csv_text(EXPORT_COLUMNS, rows)
