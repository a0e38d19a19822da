"""Privacy (PIPL-minded): masking for logs and roles that don't need personal data, export, erasure.

Erasure removes what identifies a person — profile fields, channel identities, message content,
care texts, where replies go — and keeps the rows that anonymous statistics count (orders,
messages as events, tags, lifecycle and survey scores). Both export and erase are audited.
"""

from __future__ import annotations

import json
import re
from typing import Any

import sqlalchemy as sa
from sqlmodel import SQLModel, col
from sqlmodel.ext.asyncio.session import AsyncSession

from models import ChannelIdentity, Conversation, Customer, Message, OutboxMessage, utcnow
from models.scrm import CareDelivery
from scrm.audit import Actor, record_audit
from scrm.errors import NotFound

_PHONE = re.compile(r"(?<!\d)(1[3-9]\d)(\d{4})(\d{4})(?!\d)")


def mask_phone(phone: str | None) -> str:
    """13812345678 -> 138****5678; other lengths keep only the last 4 digits."""
    if not phone:
        return ""
    digits = phone.strip()
    if len(digits) >= 11:
        return f"{digits[:-8]}****{digits[-4:]}"
    if len(digits) > 4:
        return "*" * (len(digits) - 4) + digits[-4:]
    return "*" * len(digits)


def mask_name(name: str | None) -> str:
    """张三丰 -> 张**, 张三 -> 张*, Alice -> A****; the first character only."""
    if not name:
        return ""
    name = name.strip()
    return name[0] + "*" * max(len(name) - 1, 1)


def mask_text(text: str) -> str:
    """Mask mainland mobile numbers inside free text (log lines, exported notes)."""
    return _PHONE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)


def _row_dict(row: Any) -> dict[str, Any]:
    data = dict(row._mapping) if hasattr(row, "_mapping") else dict(row)
    return json.loads(json.dumps(data, default=str, ensure_ascii=False))  # type: ignore[no-any-return]


async def export_customer(session: AsyncSession, *, customer_id: int, actor: Actor) -> dict[str, Any]:
    """Everything stored about one customer: the profile and every row of every table keyed by customer_id."""
    customer = await session.get(Customer, customer_id)
    if customer is None:
        raise NotFound(f"客户 {customer_id} 不存在")
    result: dict[str, Any] = {
        "customer": json.loads(customer.model_dump_json()),
        "exported_at": utcnow().isoformat(),
    }
    for table in SQLModel.metadata.sorted_tables:
        if "customer_id" not in table.c or table.name == "customer":
            continue
        rows = (await session.execute(sa.select(table).where(table.c.customer_id == customer_id))).all()
        if rows:
            result[str(table.name)] = [_row_dict(r) for r in rows]  # a quoted_name is no plain str for orjson
    record_audit(session, actor=actor, action="privacy.export", object_type="customer", object_id=customer_id,
                 after={"tables": sorted(k for k in result if k not in ("customer", "exported_at"))})  # fmt: skip
    return result


async def erase_customer(session: AsyncSession, *, customer_id: int, actor: Actor) -> dict[str, int]:
    """Erase personal data of one customer, keeping anonymous statistics. Returns counts per table."""
    customer = await session.get(Customer, customer_id)
    if customer is None:
        raise NotFound(f"客户 {customer_id} 不存在")
    counts: dict[str, int] = {}

    async def run(name: str, stmt: Any) -> None:
        counts[name] = int((await session.execute(stmt)).rowcount or 0)  # type: ignore[attr-defined]

    message_ids = sa.select(col(Message.id)).where(col(Message.customer_id) == customer_id)
    await run("outboxmessage", sa.update(OutboxMessage).where(col(OutboxMessage.message_id).in_(message_ids))
              .values(external_id="erased", payload={}))  # fmt: skip
    await run("message", sa.update(Message).where(col(Message.customer_id) == customer_id)
              .values(text="", payload={}))  # fmt: skip
    await run("conversation", sa.update(Conversation).where(col(Conversation.customer_id) == customer_id)
              .values(external_id="erased", flow_state={}))  # fmt: skip
    await run("caredelivery", sa.update(CareDelivery).where(col(CareDelivery.customer_id) == customer_id)
              .values(text=""))  # fmt: skip
    from models.ticket import Ticket

    await run("ticket", sa.update(Ticket).where(col(Ticket.customer_id) == customer_id)
              .values(subject="", description="", contact_phone=None))  # fmt: skip
    await run("channelidentity", sa.delete(ChannelIdentity).where(col(ChannelIdentity.customer_id) == customer_id))
    before = {"had_name": bool(customer.name), "had_phone": bool(customer.phone)}
    customer.name = customer.phone = customer.gender = customer.region = None
    customer.birthday = None
    customer.birth_month = customer.birth_day = None
    customer.phone_verified = False
    customer.attributes = {}
    customer.erased_at = utcnow()
    session.add(customer)
    record_audit(session, actor=actor, action="privacy.erase", object_type="customer", object_id=customer_id,
                 before=before, after=counts)  # fmt: skip
    await session.flush()
    return counts
