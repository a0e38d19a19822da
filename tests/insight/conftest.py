"""A small shop history for the insight tests: loyal, lapsed and one-off buyers with order lines."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from models import ChannelIdentity, Customer
from models.scrm import Order
from scrm.db import SessionFactory
from tests.scrm.conftest import NOW, Factory, make  # noqa: F401  (fixture re-export)

BASKETS = (["茶叶礼盒", "保温杯"], ["茶叶礼盒", "保温杯", "茶具"], ["咖啡豆", "手冲壶"], ["咖啡豆", "滤纸"],
           ["茶叶礼盒", "茶具"], ["咖啡豆", "手冲壶", "滤纸"])  # fmt: skip


async def shop(db: SessionFactory, *, loyal: int = 12, lapsed: int = 12, once: int = 12) -> dict[str, list[int]]:
    """Loyal customers buy every ~20 days up to last week; lapsed ones bought often a year ago and then
    stopped; one-off buyers bought once. Every order carries line items (sku, name, quantity, price)."""
    groups: dict[str, list[int]] = {"loyal": [], "lapsed": [], "once": []}
    n = 0
    async with db() as s, s.begin():
        for group, count in (("loyal", loyal), ("lapsed", lapsed), ("once", once)):
            for i in range(count):
                c = Customer(name=f"{group}{i}")
                s.add(c)
                await s.flush()
                assert c.id is not None
                groups[group].append(c.id)
                s.add(ChannelIdentity(customer_id=c.id, channel="wechat_oa", app_id="default", external_id=f"o-{c.id}",
                                      last_inbound_at=NOW - timedelta(hours=1)))  # fmt: skip
                if group == "loyal":
                    ages = [5 + i % 7 + 20 * k for k in range(8)]
                elif group == "lapsed":
                    ages = [300 + i % 5 + 15 * k for k in range(6)]
                else:
                    ages = [30 + 11 * i]
                for age in ages:
                    n += 1
                    # lapsed customers only ever bought tea and a flask: the rules know what goes with them
                    basket = BASKETS[0] if group == "lapsed" else BASKETS[(i + n) % len(BASKETS)]
                    items = [{"sku": f"SKU-{name}", "name": name, "quantity": 1, "price": 50} for name in basket]
                    amount = Decimal(400 if group != "once" else 60)
                    s.add(Order(order_no=f"O{n}", customer_id=c.id, amount=amount, items=items,
                                ordered_at=NOW - timedelta(days=age, hours=i % 5)))  # fmt: skip
    return groups
