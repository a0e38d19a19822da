"""Factories for SCRM tests: customers with identities, orders, messages — real rows, no mocks."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from models import ChannelIdentity, Conversation, Customer, Message
from models.scrm import Order
from scrm.db import SessionFactory

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


class Factory:
    def __init__(self, db: SessionFactory) -> None:
        self.db = db
        self._n = 0

    async def customer(
        self,
        *,
        channel: str = "wechat_oa",
        external_id: str | None = None,
        unionid: str | None = None,
        last_inbound_at: datetime | None = None,
        **fields: Any,
    ) -> Customer:
        self._n += 1
        async with self.db() as s, s.begin():
            c = Customer(**fields)
            if isinstance(fields.get("birthday"), date) and "birth_month" not in fields:
                c.birth_month, c.birth_day = c.birthday.month, c.birthday.day  # type: ignore[union-attr]
            s.add(c)
            await s.flush()
            if channel:
                s.add(
                    ChannelIdentity(
                        customer_id=c.id,
                        channel=channel,
                        app_id="default",
                        external_id=external_id or f"ext-{self._n}",
                        unionid=unionid,
                        last_inbound_at=last_inbound_at,
                    )
                )
        return c

    async def order(
        self, customer_id: int, amount: float | str, at: datetime, *, no: str | None = None, status: str = "paid"
    ) -> None:
        self._n += 1
        async with self.db() as s, s.begin():
            s.add(
                Order(
                    order_no=no or f"NO{self._n}",
                    customer_id=customer_id,
                    amount=Decimal(str(amount)),
                    ordered_at=at,
                    status=status,
                )
            )

    async def message(self, customer_id: int, text: str, at: datetime, *, channel: str = "wechat_oa") -> Message:
        self._n += 1
        async with self.db() as s, s.begin():
            conv = Conversation(
                customer_id=customer_id,
                channel=channel,
                app_id="default",
                external_id=f"ext-{customer_id}",
                last_message_at=at,
            )
            s.add(conv)
            await s.flush()
            m = Message(
                conversation_id=conv.id,
                customer_id=customer_id,
                channel=channel,
                direction="in",
                text=text,
                channel_msg_id=f"m{self._n}",
                created_at=at,
            )
            s.add(m)
        return m


@pytest.fixture
def make(db: SessionFactory) -> Factory:
    return Factory(db)


def days_ago(n: float) -> datetime:
    return NOW - timedelta(days=n)
