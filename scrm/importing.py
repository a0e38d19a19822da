"""CSV / JSON import of orders and customers: idempotent, validated per row, all or nothing.

Every row is validated first; if any row is wrong nothing is written and the errors say which
rows and why (`ImportFailed.errors`). Orders are keyed by order number and customers by phone
(or `id`), so importing the same file twice changes nothing the second time.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Customer, utcnow
from models.scrm import Order, OrderStatus
from scrm.audit import Actor, record_audit
from scrm.care import lunar_to_month_day
from scrm.errors import ValidationFailed

MAX_ROWS = 100_000
MAX_POINTS = 2**31 - 1
CUSTOMER_FIELDS = {"id", "name", "phone", "gender", "birthday", "birthday_calendar", "region", "member_level",
                   "points"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class RowError:
    row: int  # 1-based data row (CSV header not counted)
    field: str
    message: str


class ImportFailed(ValidationFailed):
    """Nothing was imported; `errors` lists every bad row."""

    def __init__(self, errors: list[RowError]) -> None:
        head = "; ".join(f"第 {e.row} 行 {e.field}: {e.message}" for e in errors[:5])
        more = f" …共 {len(errors)} 处错误" if len(errors) > 5 else ""
        super().__init__(f"导入失败，未写入任何数据: {head}{more}")
        self.errors = errors


@dataclass(slots=True)
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    customers_created: int = 0
    ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged,
                "customers_created": self.customers_created}  # fmt: skip


def parse_rows(content: str | bytes, fmt: str) -> list[dict[str, Any]]:
    """Rows from CSV (header line) or JSON (a list of objects, or {"orders"|"customers": [...]})."""
    text = content.decode("utf-8-sig") if isinstance(content, bytes) else content.lstrip("\ufeff")
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationFailed(f"JSON 格式错误: {exc}") from None
        if isinstance(data, dict):
            data = data.get("orders") or data.get("customers") or data.get("rows") or []
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise ValidationFailed("JSON 需要对象列表")
        rows = data
    elif fmt == "csv":
        rows = [
            {k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in r.items() if k}
            for r in csv.DictReader(io.StringIO(text))
        ]
    else:
        raise ValidationFailed(f"不支持的格式 {fmt}（csv 或 json）")
    if len(rows) > MAX_ROWS:
        raise ValidationFailed(f"单次最多导入 {MAX_ROWS} 行")
    return rows


def _datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    else:
        text = str(value).strip().replace("/", "-")
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:  # shop exports are in Beijing time when they carry no offset
        from zoneinfo import ZoneInfo

        parsed = parsed.replace(tzinfo=ZoneInfo("Asia/Shanghai"))
    return parsed.astimezone(UTC)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


@dataclass(slots=True)
class _OrderRow:
    order_no: str
    amount: Decimal
    status: OrderStatus
    ordered_at: datetime
    items: list[Any]
    customer_id: int | None
    phone: str | None
    name: str | None


def _validate_order(i: int, row: dict[str, Any], errors: list[RowError]) -> _OrderRow | None:
    start = len(errors)
    order_no = str(row.get("order_no") or "").strip()
    if not order_no or len(order_no) > 64:
        errors.append(RowError(i, "order_no", "订单号必填，最多 64 字符"))
    amount = Decimal("0")
    try:
        amount = Decimal(str(row.get("amount", "")).strip())
        if amount < 0 or amount.as_tuple().exponent < -2 or amount >= Decimal("1e10"):  # type: ignore[operator]
            raise InvalidOperation
    except (InvalidOperation, ValueError):
        errors.append(RowError(i, "amount", f"金额无效: {row.get('amount')!r}"))
    status = OrderStatus.PAID
    try:
        status = OrderStatus(str(row.get("status") or "paid").strip())
    except ValueError:
        errors.append(RowError(i, "status", f"状态只能是 {', '.join(s.value for s in OrderStatus)}"))
    ordered_at = utcnow()
    try:
        ordered_at = _datetime(row.get("ordered_at"))
    except (TypeError, ValueError):
        errors.append(RowError(i, "ordered_at", f"时间无效: {row.get('ordered_at')!r}"))
    items = row.get("items") or []
    if isinstance(items, str):
        try:
            items = json.loads(items) if items.strip().startswith("[") else [items]
        except json.JSONDecodeError:
            errors.append(RowError(i, "items", "items 需要 JSON 列表"))
    customer_id: int | None = None
    raw_id = row.get("customer_id")
    if not _blank(raw_id):
        try:
            customer_id = int(str(raw_id))
        except ValueError:
            errors.append(RowError(i, "customer_id", "客户 ID 必须是整数"))
    phone = None if _blank(row.get("phone")) else str(row.get("phone")).strip()
    if phone is not None and not (phone.isdigit() and 6 <= len(phone) <= 20):
        errors.append(RowError(i, "phone", "手机号格式不正确"))
    if customer_id is None and phone is None:
        errors.append(RowError(i, "customer", "需要 customer_id 或 phone"))
    if len(errors) > start:
        return None
    name = None if _blank(row.get("name")) else str(row.get("name")).strip()[:64]
    return _OrderRow(order_no, amount, status, ordered_at, list(items), customer_id, phone, name)


async def import_orders(
    session: AsyncSession, rows: list[dict[str, Any]], *, actor: Actor, source: str = "import"
) -> ImportResult:
    """Upsert orders by order number; customers are found by id or phone (created by phone when new)."""
    errors: list[RowError] = []
    parsed: list[_OrderRow] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(rows, 1):
        order = _validate_order(i, raw, errors)
        if order is None:
            continue
        if order.order_no in seen:
            errors.append(RowError(i, "order_no", f"与第 {seen[order.order_no]} 行订单号重复"))
            continue
        seen[order.order_no] = i
        parsed.append(order)
    ids = {o.customer_id for o in parsed if o.customer_id is not None}
    known_ids: set[int] = set()
    if ids:
        found = (await session.exec(select(Customer.id).where(col(Customer.id).in_(ids)))).all()
        known_ids = {i for i in found if i is not None}
    for order in parsed:
        if order.customer_id is not None and order.customer_id not in known_ids:
            row_no = seen[order.order_no]
            errors.append(RowError(row_no, "customer_id", f"客户 {order.customer_id} 不存在"))
    if errors:
        raise ImportFailed(sorted(errors, key=lambda e: e.row))
    result = ImportResult()
    phones = {o.phone for o in parsed if o.customer_id is None and o.phone}
    by_phone: dict[str, int] = {}
    if phones:
        stmt = (
            select(Customer.phone, Customer.id)
            .where(col(Customer.phone).in_(phones), col(Customer.merged_into_id).is_(None))
            .order_by(col(Customer.id))
        )
        for phone, cid in (await session.exec(stmt)).all():
            if phone and cid is not None:
                by_phone.setdefault(phone, cid)
    existing = {
        o.order_no: o
        for o in (await session.exec(select(Order).where(col(Order.order_no).in_([p.order_no for p in parsed])))).all()
    }
    now = utcnow()
    for order in parsed:
        customer_id = order.customer_id
        if customer_id is None:
            assert order.phone is not None
            if order.phone not in by_phone:
                customer = Customer(phone=order.phone, name=order.name)
                session.add(customer)
                await session.flush()
                assert customer.id is not None
                by_phone[order.phone] = customer.id
                result.customers_created += 1
            customer_id = by_phone[order.phone]
        current = existing.get(order.order_no)
        values: dict[str, Any] = {"customer_id": customer_id, "amount": order.amount, "status": order.status,
                  "ordered_at": order.ordered_at, "items": order.items}  # fmt: skip
        if current is None:
            row = Order(order_no=order.order_no, source=source, **values)
            session.add(row)
            result.created += 1
        elif _order_changed(current, values):
            for key, value in values.items():
                setattr(current, key, value)
            current.updated_at = now
            result.updated += 1
        else:
            result.unchanged += 1
    await session.flush()
    record_audit(session, actor=actor, action="orders.import", object_type="order", after=result.as_dict())
    return result


def _order_changed(current: Order, values: dict[str, Any]) -> bool:
    ordered_at = current.ordered_at if current.ordered_at.tzinfo else current.ordered_at.replace(tzinfo=UTC)
    return (
        current.customer_id != values["customer_id"]
        or Decimal(str(current.amount)) != values["amount"]
        or str(current.status) != str(values["status"])
        or ordered_at != values["ordered_at"]
        or list(current.items) != values["items"]
    )


def _validate_customer(i: int, row: dict[str, Any], errors: list[RowError]) -> dict[str, Any] | None:
    start = len(errors)
    out: dict[str, Any] = {"attributes": {}}
    for key, value in row.items():
        if key.startswith("attr.") or key.startswith("attributes."):
            if not _blank(value):
                out["attributes"][key.split(".", 1)[1]] = value
        elif key not in CUSTOMER_FIELDS:
            errors.append(RowError(i, key, "未知列"))
    if not _blank(row.get("id")):
        try:
            out["id"] = int(str(row["id"]))
        except ValueError:
            errors.append(RowError(i, "id", "id 必须是整数"))
    phone = None if _blank(row.get("phone")) else str(row["phone"]).strip()
    if phone is not None and not (phone.isdigit() and 6 <= len(phone) <= 20):
        errors.append(RowError(i, "phone", "手机号格式不正确"))
    if phone is None and "id" not in out:
        errors.append(RowError(i, "phone", "需要 phone 或 id"))
    out["phone"] = phone
    for key, limit in (("name", 64), ("region", 64), ("member_level", 16)):
        if not _blank(row.get(key)):
            text = str(row[key]).strip()
            if len(text) > limit:
                errors.append(RowError(i, key, f"最多 {limit} 字符"))
            out[key] = text
    gender = None if _blank(row.get("gender")) else str(row["gender"]).strip()
    gender = {"男": "male", "女": "female", "m": "male", "f": "female"}.get(gender or "", gender)
    if gender is not None and gender not in ("male", "female", "unknown"):
        errors.append(RowError(i, "gender", "性别只能是 男/女/male/female"))
    out["gender"] = gender
    calendar = str(row.get("birthday_calendar") or "solar").strip()
    if calendar not in ("solar", "lunar"):
        errors.append(RowError(i, "birthday_calendar", "只能是 solar 或 lunar"))
    if not _blank(row.get("birthday")):
        try:
            birthday = date.fromisoformat(str(row["birthday"]).strip().replace("/", "-"))
            out["birthday"] = birthday
            if calendar == "lunar":
                out["birth_month"], out["birth_day"] = lunar_to_month_day(birthday.year, birthday.month,
                                                                          birthday.day)  # fmt: skip
            else:
                out["birth_month"], out["birth_day"] = birthday.month, birthday.day
            out["birthday_calendar"] = calendar
        except (ValueError, IndexError):
            errors.append(RowError(i, "birthday", f"日期无效: {row['birthday']!r}（公历 YYYY-MM-DD）"))
    if not _blank(row.get("points")):
        try:
            points = int(str(row["points"]))
            if not 0 <= points <= MAX_POINTS:  # an INTEGER column
                raise ValueError
            out["points"] = points
        except ValueError:
            errors.append(RowError(i, "points", f"积分必须是 0 到 {MAX_POINTS} 之间的整数"))
    return out if len(errors) == start else None


async def import_customers(session: AsyncSession, rows: list[dict[str, Any]], *, actor: Actor) -> ImportResult:
    """Upsert customers by id or phone. Birthdays are solar dates; with birthday_calendar=lunar the
    customer celebrates on the lunar month/day of that date every year."""
    errors: list[RowError] = []
    parsed: list[tuple[int, dict[str, Any]]] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(rows, 1):
        data = _validate_customer(i, raw, errors)
        if data is None:
            continue
        key = f"id:{data['id']}" if "id" in data else f"phone:{data['phone']}"
        if key in seen:
            errors.append(RowError(i, "phone", f"与第 {seen[key]} 行重复"))
            continue
        seen[key] = i
        parsed.append((i, data))
    ids = [d["id"] for _, d in parsed if "id" in d]
    by_id = {c.id: c for c in (await session.exec(select(Customer).where(col(Customer.id).in_(ids)))).all()}
    for i, data in parsed:
        if "id" in data and data["id"] not in by_id:
            errors.append(RowError(i, "id", f"客户 {data['id']} 不存在"))
    if errors:
        raise ImportFailed(sorted(errors, key=lambda e: e.row))
    phones = [d["phone"] for _, d in parsed if "id" not in d]
    by_phone: dict[str, Customer] = {}
    for c in (
        await session.exec(
            select(Customer)
            .where(col(Customer.phone).in_(phones), col(Customer.merged_into_id).is_(None))
            .order_by(col(Customer.id))
        )
    ).all():
        if c.phone:
            by_phone.setdefault(c.phone, c)
    result = ImportResult()
    for _, data in parsed:
        customer = by_id.get(data["id"]) if "id" in data else by_phone.get(data["phone"])
        values = {k: v for k, v in data.items() if k not in ("id", "attributes") and v is not None}
        if customer is None:
            customer = Customer(**values, attributes=data["attributes"])
            session.add(customer)
            result.created += 1
            continue
        attrs = {**customer.attributes, **data["attributes"]}
        changed = attrs != customer.attributes or any(getattr(customer, k) != v for k, v in values.items())
        if not changed:
            result.unchanged += 1
            continue
        for key, value in values.items():
            setattr(customer, key, value)
        customer.attributes = attrs
        session.add(customer)
        result.updated += 1
    await session.flush()
    record_audit(session, actor=actor, action="customers.import", object_type="customer", after=result.as_dict())
    return result
