"""推荐商品 for given customers: the nightly product rules applied to what each customer has bought."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.insight import CustomerInsight, ProductRule
from models.scrm import Order, OrderStatus
from scrm.insight.crosssell import Rule, recommend


def item_names(items: object) -> set[str]:
    """Product names of one order's line items ({sku, name, quantity, price}); the sku when unnamed."""
    names = {str(i.get("name") or i.get("sku") or "").strip() for i in items or [] if isinstance(i, dict)}  # type: ignore[attr-defined]
    names.discard("")
    return names


async def recommendations_for(session: AsyncSession, customer_ids: list[int], k: int = 3) -> dict[int, list[str]]:
    """Best rule consequents per customer, never something they already bought; {} without rules."""
    rows = (await session.exec(select(ProductRule))).all()
    if not rows or not customer_ids:
        return {}
    rules = [Rule(tuple(r.antecedent), r.consequent, r.support, r.confidence, r.lift) for r in rows]
    owned: dict[int, set[str]] = {}
    orders = select(col(Order.customer_id), col(Order.items)).where(
        col(Order.customer_id).in_(customer_ids), col(Order.status) == OrderStatus.PAID
    )
    for customer_id, items in (await session.exec(orders)).all():
        owned.setdefault(customer_id, set()).update(item_names(items))
    return {cid: recommend(rules, have, k) for cid, have in owned.items()}


async def customer_insight(session: AsyncSession, customer_id: int) -> dict[str, Any] | None:
    """Scores, persona and 推荐商品 of one customer (None before the first insight run)."""
    row = await session.get(CustomerInsight, customer_id)
    recommended = (await recommendations_for(session, [customer_id], k=5)).get(customer_id, [])
    if row is None and not recommended:
        return None
    scores = row.model_dump(mode="json", exclude={"customer_id"}) if row else {}
    return {**scores, "recommendations": recommended}
