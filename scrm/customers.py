"""Customers: resolve a channel identity to a customer (merged across channels by unionid)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import ChannelIdentity, Customer, IdentityStatus, aware

TOUCH_EVERY = timedelta(minutes=1)


async def resolve_customer(
    session: AsyncSession,
    *,
    channel: str,
    app_id: str,
    external_id: str,
    unionid: str | None = None,
    seen_at: datetime | None = None,
) -> tuple[Customer, ChannelIdentity]:
    """The customer behind a channel identity, creating both on first contact.

    A new identity whose unionid is already known joins that customer, so the same WeChat
    user on the Official Account and on WeCom is one customer.
    """
    found = (
        await session.exec(
            select(ChannelIdentity, Customer)
            .join(Customer, col(Customer.id) == ChannelIdentity.customer_id)
            .where(
                ChannelIdentity.channel == channel,
                ChannelIdentity.app_id == app_id,
                ChannelIdentity.external_id == external_id,
            )
        )
    ).first()  # the identity and its customer in one round trip
    if found is None:
        customer = await _customer_by_unionid(session, unionid) or Customer()
        if customer.id is None:
            session.add(customer)
            await session.flush()
        assert customer.id is not None
        identity = ChannelIdentity(
            customer_id=customer.id, channel=channel, app_id=app_id, external_id=external_id, unionid=unionid
        )
        session.add(identity)
        await session.flush()
    else:
        identity, customer = found
        if customer.merged_into_id is not None:
            customer = await _live_customer(session, customer.merged_into_id)
        if unionid and not identity.unionid:
            identity.unionid = unionid
        identity.status = IdentityStatus.ACTIVE
    if seen_at is not None:
        identity.last_inbound_at = seen_at  # exact: WeChat's reply window and per-message limits count from it
        if customer.last_active_at is None or seen_at - aware(customer.last_active_at) >= TOUCH_EVERY:
            customer.last_active_at = seen_at  # a burst of messages writes it once a minute, not per message
    return customer, identity


async def _customer_by_unionid(session: AsyncSession, unionid: str | None) -> Customer | None:
    if not unionid:
        return None
    other = (
        await session.exec(
            select(ChannelIdentity).where(ChannelIdentity.unionid == unionid).order_by(col(ChannelIdentity.id))
        )
    ).first()
    return await _live_customer(session, other.customer_id) if other else None


async def _live_customer(session: AsyncSession, customer_id: int) -> Customer:
    """Follow merge pointers to the surviving customer."""
    customer = await session.get_one(Customer, customer_id)
    seen = {customer_id}
    while customer.merged_into_id is not None and customer.merged_into_id not in seen:
        seen.add(customer.merged_into_id)
        customer = await session.get_one(Customer, customer.merged_into_id)
    return customer
