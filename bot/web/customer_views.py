"""What the 客户 pages need beyond the SCRM API: search clauses, list extras and a merge preview.

The merge preview runs the real merge inside a savepoint and rolls it back, so what it shows is
exactly what merging would move (no second implementation to drift from `scrm.identity`).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from aiohttp import web
from pydantic import BaseModel
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.keys import db_key
from bot.web.api import SUPERVISOR, ApiRouter, path_id
from models import ChannelIdentity, Customer, CustomerTag, Tag, User
from models.scrm import CustomerValue
from scrm import identity
from scrm.audit import Actor
from scrm.errors import NotFound

router = ApiRouter("scrm")


def value_and_channel(tier: str | None, channel: str | None) -> list[Any]:
    where: list[Any] = []
    if tier:
        value = CustomerValue
        where.append(sa.exists().where(col(value.customer_id) == col(Customer.id), col(value.tier) == tier))
    if channel:
        ident = ChannelIdentity
        where.append(sa.exists().where(col(ident.customer_id) == col(Customer.id), col(ident.channel) == channel))
    return where


async def list_extras(session: AsyncSession, ids: list[int]) -> dict[int, dict[str, Any]]:
    """Value tier, channels and tags of a page of customers (three queries, not three per row)."""
    out: dict[int, dict[str, Any]] = {i: {"tier": None, "channels": [], "tags": []} for i in ids}
    if not ids:
        return out
    value, ident = CustomerValue, ChannelIdentity
    for cid, tier in (
        await session.exec(select(value.customer_id, value.tier).where(col(value.customer_id).in_(ids)))
    ).all():
        out[cid]["tier"] = tier
    for cid, channel in (
        await session.exec(select(ident.customer_id, ident.channel).where(col(ident.customer_id).in_(ids)))
    ).all():
        if channel not in out[cid]["channels"]:
            out[cid]["channels"].append(channel)
    for cid, name in (
        await session.exec(
            select(CustomerTag.customer_id, Tag.name)
            .join(Tag, col(Tag.id) == col(CustomerTag.tag_id))
            .where(col(CustomerTag.customer_id).in_(ids))
        )
    ).all():
        out[cid]["tags"].append(name)
    return out


class MergePreviewQuery(BaseModel):
    source_id: int


@router.get("/customers/{customer_id}/merge-preview", roles=SUPERVISOR, query=MergePreviewQuery)
async def merge_preview(request: web.Request, user: User, query: MergePreviewQuery) -> dict[str, Any]:
    """What merging `source_id` into this customer would move and fill in (nothing is changed)."""
    from bot.web.scrm import customer_view

    target_id = path_id(request, "customer_id")
    async with request.app[db_key]() as session:
        source = await session.get(Customer, query.source_id)
        target = await session.get(Customer, target_id)
        if source is None or target is None:
            raise NotFound("客户不存在")
        views = {"source": customer_view(source, user), "target": customer_view(target, user)}
        nested = await session.begin_nested()
        try:
            actor = Actor(id=user.id, name=user.username, role=str(user.role))
            record = await identity.merge_customers(
                session, source_id=query.source_id, target_id=target_id, actor=actor
            )
            moved = {table: len(ids) for table, ids in record.moved.items()}
            filled = sorted(record.filled)
        finally:
            await nested.rollback()
        await session.rollback()
    return {**views, "moved": moved, "filled": filled}


def setup(app: web.Application) -> None:
    router.install(app)
