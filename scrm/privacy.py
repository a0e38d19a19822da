"""Privacy (PIPL-minded): masking for logs and roles that don't need personal data, export, erasure.

Erasure removes what identifies a person — profile fields, channel identities, message content,
care texts, where replies go — and keeps the rows that anonymous statistics count (orders,
messages as events, tags, lifecycle and survey scores). Both export and erase are audited.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import SQLModel, col
from sqlmodel.ext.asyncio.session import AsyncSession

from models import ChannelIdentity, Conversation, Customer, Message, OutboxMessage, utcnow
from models.scrm import CareDelivery
from scrm.audit import Actor, record_audit
from scrm.errors import NotFound

# A mainland mobile number as people write it: 13912345678, +8613912345678, 0086 139…, 139-1234-5678,
# 139 1234 5678, full-width １３９１２３４５６７８ (one separator at most between two digits).
_D = "0-9０-９"
_SEP = r"[ \-－.\u3000\u00a0]?"
_PHONE = re.compile(
    rf"(?<![{_D}])(?P<prefix>(?:[+＋]|00|００)?[8８][6６]{_SEP})?"
    rf"(?P<number>[1１]{_SEP}[3-9３-９](?:{_SEP}[{_D}]){{9}})(?![{_D}])"
)
_HIDDEN_DIGITS = range(3, 7)  # 139****5678: the 4th to 7th digit
MASK = "*"


def _mask_number(match: re.Match[str]) -> str:
    out, seen = [], 0
    for ch in match.group("number"):
        if ch.isdigit():
            out.append(MASK if seen in _HIDDEN_DIGITS else ch)
            seen += 1
        else:
            out.append(ch)
    return (match.group("prefix") or "") + "".join(out)


def mask_text(text: str, names: Iterable[str | None] = ()) -> str:
    """The one masking function for free text shown to roles that must not see personal data (and for logs):
    mobile numbers in every common format keep their first 3 and last 4 digits, and the known customer
    `names` (2+ characters) appear as `mask_name` shows them."""
    masked = _PHONE.sub(_mask_number, text)
    for name in sorted({n.strip() for n in names if n and len(n.strip()) >= 2}, key=len, reverse=True):
        masked = masked.replace(name, mask_name(name))
    return masked


def mask_phone(phone: str | None) -> str:
    """A phone field: 13812345678 -> 138****5678 (`mask_text`); anything else keeps only its last 4 characters."""
    if not phone:
        return ""
    phone = phone.strip()
    masked = mask_text(phone)
    if masked != phone:
        return masked
    return MASK * max(len(phone) - 4, len(phone) // 2) + phone[max(len(phone) // 2, len(phone) - 4) :]


def mask_name(name: str | None) -> str:
    """张三丰 -> 张**, 张三 -> 张*, Alice -> A****; the first character only."""
    if not name:
        return ""
    name = name.strip()
    return name[0] + MASK * max(len(name) - 1, 1)


def normalize_phone(text: str) -> str | None:
    """A complete mainland mobile number as stored (13912345678), from any written form; None otherwise."""
    digits = unicodedata.normalize("NFKC", text).strip()
    digits = re.sub(r"[\s\-.()]", "", digits).removeprefix("+").removeprefix("00")
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    return digits if re.fullmatch(r"1[3-9]\d{9}", digits) and digits.isascii() else None


@dataclass(frozen=True, slots=True)
class Viewer:
    """What one reader may see of a customer: everything (`full`), or personal data masked, with the
    customers' known `names` hidden in free text too. Built at the API boundary from the reader's role."""

    full: bool
    names: tuple[str, ...] = ()

    def about(self, *names: str | None) -> Viewer:
        return self if self.full else Viewer(False, self.names + tuple(n for n in names if n))

    def text(self, text: str | None) -> str:
        return (text or "") if self.full else mask_text(text or "", self.names)

    def phone(self, phone: str | None) -> str:
        return (phone or "") if self.full else mask_phone(phone)

    def name(self, name: str | None) -> str:
        return (name or "") if self.full else mask_name(name)

    def deep(self, value: Any) -> Any:
        """Every string inside a JSON-like value (event data) through `text`."""
        if self.full:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.deep(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.deep(v) for v in value]
        return value


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
