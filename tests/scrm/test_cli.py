"""`huike import …`, `huike care preview/run`, `huike privacy export/erase` on a real database."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from sqlmodel import select

from models import AuditLog, Customer, Message
from models.scrm import CareDelivery, Order
from scrm.audit import Actor
from scrm.care import save_care_rule
from scrm.db import SessionFactory, transaction


def _run(args: list[str], database_url: str, data_dir: Path) -> tuple[int, str]:
    from typer.testing import CliRunner

    from bot.cli import app

    env = {"HUIKE_DATABASE_URL": database_url, "HUIKE_DATA_DIR": str(data_dir), "HUIKE_LOG_LEVEL": "WARNING"}
    result = CliRunner().invoke(app, args, env=env)
    return result.exit_code, result.output


async def run(args: list[str], database_url: str, tmp_path: Path) -> tuple[int, str]:
    return await asyncio.to_thread(_run, args, database_url, tmp_path)


async def test_import_care_and_privacy_commands(db: SessionFactory, database_url: str, tmp_path: Path) -> None:
    customers = tmp_path / "customers.csv"
    customers.write_text("phone,name,birthday\n13700000001,周一,1990-03-15\n13700000002,吴二,\n", encoding="utf-8")
    code, out = await run(["import", "customers", str(customers)], database_url, tmp_path)
    assert code == 0 and "'created': 2" in out, out
    orders = tmp_path / "orders.json"
    orders.write_text(
        json.dumps([{"order_no": "C-1", "phone": "13700000001", "amount": 66, "ordered_at": "2027-03-01"}])
    )
    code, out = await run(["import", "orders", str(orders)], database_url, tmp_path)
    assert code == 0 and "'created': 1" in out, out
    bad = tmp_path / "bad.csv"
    bad.write_text("order_no,phone,amount,ordered_at\nC-2,13700000001,abc,2027-03-01\n", encoding="utf-8")
    code, out = await run(["import", "orders", str(bad)], database_url, tmp_path)
    assert code == 1 and "line 1 amount" in out, out

    async with db() as s:
        customer = (await s.exec(select(Customer).where(Customer.phone == "13700000001"))).one()
    async with transaction(db) as s:
        s.add(customer)
        from models import ChannelIdentity

        s.add(ChannelIdentity(customer_id=customer.id, channel="webchat", app_id="default", external_id="v-1"))
        await save_care_rule(s, data={"name": "生日", "kind": "birthday", "template": "{{ name }}生日快乐"},
                             actor=Actor.system("test"))  # fmt: skip
    code, out = await run(["care", "preview", "生日", "--date", "2027-03-15"], database_url, tmp_path)
    assert code == 0 and "1 customer" in out and "周一生日快乐" in out, out
    async with db() as s:
        assert (await s.exec(select(CareDelivery))).all() == []
    code, out = await run(["care", "run", "--rule", "生日", "--date", "2027-03-15"], database_url, tmp_path)
    assert code == 0 and "claimed 1" in out and "'sent': 1" in out, out
    code, out = await run(["care", "run", "--rule", "生日", "--date", "2027-03-15"], database_url, tmp_path)
    assert code == 0 and "claimed 0" in out, out

    target = tmp_path / "export.json"
    code, out = await run(["privacy", "export", str(customer.id), "--out", str(target)], database_url, tmp_path)
    assert code == 0, out
    exported = json.loads(target.read_text(encoding="utf-8"))
    assert exported["customer"]["phone"] == "13700000001" and exported["customer_order"][0]["order_no"] == "C-1"
    code, out = await run(["privacy", "erase", str(customer.id), "--yes"], database_url, tmp_path)
    assert code == 0, out
    async with db() as s:
        erased = await s.get(Customer, customer.id)
        texts = (await s.exec(select(Message.text).where(Message.customer_id == customer.id))).all()
        orders_left = (await s.exec(select(Order))).all()
        actions = (await s.exec(select(AuditLog.action).where(AuditLog.actor == "cli"))).all()
    assert erased.phone is None and erased.name is None and texts == [""] and len(orders_left) == 1
    assert {"customers.import", "orders.import", "privacy.export", "privacy.erase"} <= set(actions)
