"""Order and customer import: idempotent, per-row errors, nothing half-imported."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlmodel import select

from models import Customer
from models.scrm import Order
from scrm.audit import Actor
from scrm.importing import ImportFailed, import_customers, import_orders, parse_rows

ADMIN = Actor(id=None, name="admin", role="admin")

ORDERS_CSV = """order_no,phone,name,amount,status,ordered_at
A-1,13800000001,王五,120.50,paid,2026-11-01 10:00:00
A-2,13800000001,,80,paid,2026-11-02T10:00:00+08:00
A-3,13800000002,赵六,300,refunded,2026-11-03
"""


async def counts(db) -> tuple[int, int]:
    async with db() as s:
        o = (await s.execute(sa.select(sa.func.count()).select_from(Order))).scalar_one()
        c = (await s.execute(sa.select(sa.func.count()).select_from(Customer))).scalar_one()
    return o, c


async def test_orders_import_is_idempotent_and_updates_changed_rows(db) -> None:
    rows = parse_rows(ORDERS_CSV, "csv")
    async with db() as s, s.begin():
        first = await import_orders(s, rows, actor=ADMIN)
    assert first.as_dict() == {"created": 3, "updated": 0, "unchanged": 0, "customers_created": 2}
    async with db() as s, s.begin():
        again = await import_orders(s, rows, actor=ADMIN)
    assert again.as_dict() == {"created": 0, "updated": 0, "unchanged": 3, "customers_created": 0}
    changed = parse_rows(ORDERS_CSV.replace("120.50", "121.00"), "csv")
    async with db() as s, s.begin():
        third = await import_orders(s, changed, actor=ADMIN)
    assert (third.updated, third.unchanged) == (1, 2)
    assert await counts(db) == (3, 2)
    async with db() as s:
        a1 = (await s.exec(select(Order).where(Order.order_no == "A-1"))).one()
    assert str(a1.amount) in ("121.00", "121")
    assert a1.ordered_at.astimezone().utcoffset() is not None


async def test_bad_rows_are_reported_and_nothing_is_written(db) -> None:
    rows = parse_rows(
        """[{"order_no": "B-1", "phone": "13800000009", "amount": 10, "ordered_at": "2026-11-01"},
            {"order_no": "B-2", "phone": "abc", "amount": -1, "ordered_at": "yesterday"},
            {"order_no": "B-1", "phone": "13800000009", "amount": 10, "ordered_at": "2026-11-01"},
            {"order_no": "B-4", "customer_id": 999, "amount": 5, "ordered_at": "2026-11-01"}]""",
        "json",
    )
    with pytest.raises(ImportFailed) as info:
        async with db() as s, s.begin():
            await import_orders(s, rows, actor=ADMIN)
    errors = {(e.row, e.field) for e in info.value.errors}
    assert {(2, "phone"), (2, "amount"), (2, "ordered_at"), (3, "order_no"), (4, "customer_id")} <= errors
    assert await counts(db) == (0, 0)


async def test_customers_import_with_lunar_birthday_and_attributes(db) -> None:
    text = """phone,name,gender,birthday,birthday_calendar,points,attr.source
13800000011,孙七,女,1996-02-19,lunar,100,门店
13800000012,周八,男,2000-02-29,,0,
"""
    async with db() as s, s.begin():
        result = await import_customers(s, parse_rows(text, "csv"), actor=ADMIN)
    assert result.created == 2
    async with db() as s, s.begin():
        again = await import_customers(s, parse_rows(text, "csv"), actor=ADMIN)
    assert again.unchanged == 2
    async with db() as s:
        sun = (await s.exec(select(Customer).where(Customer.phone == "13800000011"))).one()
        zhou = (await s.exec(select(Customer).where(Customer.phone == "13800000012"))).one()
    assert (sun.birthday_calendar, sun.birth_month, sun.birth_day, sun.gender) == ("lunar", 1, 1, "female")
    assert sun.attributes == {"source": "门店"} and sun.points == 100
    assert (zhou.birth_month, zhou.birth_day) == (2, 29)
    with pytest.raises(ImportFailed):
        async with db() as s, s.begin():
            await import_customers(s, parse_rows("phone,birthday\n13800000013,1990-02-30\n", "csv"), actor=ADMIN)
