"""The rule DSL: JSON/YAML conditions compiled to one SQLAlchemy boolean expression over `customer`.

Tag rules, segments and care audiences all use it, and the database evaluates it for the whole
customer base at once (never customer by customer in Python).

    {"all": [cond, ...]}  {"any": [cond, ...]}  {"not": cond}
    {"attr": "lifecycle_stage", "op": "in", "value": ["成长", "成熟"]}
    {"attr": "custom.source", "op": "eq", "value": "门店"}          # admin-defined attribute
    {"attr": "value.tier", "op": "eq", "value": "高价值"}           # RFM / order metrics
    {"attr": "value.churn_risk", "op": "eq", "value": "高"}         # insight: p_alive, expected_*_90d, persona
    {"attr": "last_active_at", "op": "before_days", "value": 90}
    {"tag": "退款关注"}  or  {"tag": ["A", "B"]}                     # carries any of them
    {"orders": {"count": {"gte": 2}, "sum": {"gte": 100}, "within_days": 30, "status": "paid"}}
    {"event": {"kind": "intent", "name": "refund", "count": {"gte": 2}, "within_days": 30}}
    {"event": {"kind": "message", "count": {"gte": 1}, "within_days": 7}}   # inbound messages
    {"segment": "高价值活跃"}                                       # another saved segment

Operators: eq ne in not_in gt gte lt lte between contains startswith is_null not_null
within_days before_days. Counts/sums take {"eq"|"ne"|"gt"|"gte"|"lt"|"lte": n} or {"between": [a, b]}.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Customer, CustomerTag, Message, Tag, utcnow
from models.insight import CustomerInsight
from models.scrm import CustomerEvent, CustomerValue, Order, OrderStatus, Segment
from scrm.errors import ValidationFailed

MAX_DEPTH = 12

# attribute name -> (column, kind); kind drives which operators and values are valid
CUSTOMER_ATTRS: dict[str, tuple[Any, str]] = {
    "name": (Customer.name, "str"),
    "phone": (Customer.phone, "str"),
    "gender": (Customer.gender, "str"),
    "region": (Customer.region, "str"),
    "birthday": (Customer.birthday, "date"),
    "birthday_calendar": (Customer.birthday_calendar, "str"),
    "birth_month": (Customer.birth_month, "int"),
    "birth_day": (Customer.birth_day, "int"),
    "member_level": (Customer.member_level, "str"),
    "points": (Customer.points, "int"),
    "lifecycle_stage": (Customer.lifecycle_stage, "str"),
    "lifecycle_changed_at": (Customer.lifecycle_changed_at, "datetime"),
    "phone_verified": (Customer.phone_verified, "bool"),
    "created_at": (Customer.created_at, "datetime"),
    "last_active_at": (Customer.last_active_at, "datetime"),
    "id": (Customer.id, "int"),
}
VALUE_ATTRS: dict[str, tuple[Any, str]] = {
    "tier": (CustomerValue.tier, "str"),
    "r": (CustomerValue.r, "int"),
    "f": (CustomerValue.f, "int"),
    "m": (CustomerValue.m, "int"),
    "order_count": (CustomerValue.order_count, "int"),
    "total_spend": (CustomerValue.total_spend, "decimal"),
    "recency_days": (CustomerValue.recency_days, "int"),
    "last_order_at": (CustomerValue.last_order_at, "datetime"),
    "first_order_at": (CustomerValue.first_order_at, "datetime"),
}
# nightly insight scores (scrm.insight), addressed as value.* like the RFM metrics
INSIGHT_ATTRS: dict[str, tuple[Any, str]] = {
    "p_alive": (CustomerInsight.p_alive, "float"),
    "p_repeat_90d": (CustomerInsight.p_repeat_90d, "float"),
    "expected_orders_90d": (CustomerInsight.expected_orders_90d, "float"),
    "expected_spend_90d": (CustomerInsight.expected_spend_90d, "float"),
    "churn_risk": (CustomerInsight.churn_risk, "str"),
    "persona": (CustomerInsight.persona, "str"),
}
OPS = {
    "eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "between",
    "contains", "startswith", "is_null", "not_null", "within_days", "before_days",
}  # fmt: skip
CMP_OPS = {"eq", "ne", "gt", "gte", "lt", "lte", "between"}
EVENT_KINDS = {"intent", "topic", "ticket", "survey", "message", "care", "custom"}


def escape_like(value: str) -> str:
    """`value` as literal text inside a LIKE pattern (with `escape="\\"`): % and _ match only themselves."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _fail(path: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"规则条件错误 {path or '$'}: {message}")


@dataclass(slots=True)
class Compiler:
    """Compiles one condition tree; `segments` maps names/ids to already-loaded segment conditions."""

    now: datetime
    segments: Mapping[str, dict[str, Any]]
    only_customers: Collection[int] | None = None  # incremental evaluation: grouped scans read just their rows

    def compile(self, cond: Any, path: str = "$", depth: int = 0) -> ColumnElement[bool]:
        if depth > MAX_DEPTH:
            raise _fail(path, "嵌套过深")
        if not isinstance(cond, Mapping) or len(cond) == 0:
            raise _fail(path, "条件必须是非空对象")
        if "all" in cond or "any" in cond:
            key = "all" if "all" in cond else "any"
            items = cond[key]
            if not isinstance(items, list) or not items:
                raise _fail(path, f"{key} 需要非空列表")
            parts = [self.compile(c, f"{path}.{key}[{i}]", depth + 1) for i, c in enumerate(items)]
            return sa.and_(*parts) if key == "all" else sa.or_(*parts)
        if "not" in cond:
            return sa.not_(self.compile(cond["not"], f"{path}.not", depth + 1))
        if "attr" in cond:
            return self._attr(cond, path)
        if "tag" in cond:
            return self._tag(cond["tag"], path)
        if "orders" in cond:
            return self._orders(cond["orders"], f"{path}.orders")
        if "event" in cond:
            return self._event(cond["event"], f"{path}.event")
        if "segment" in cond:
            ref = str(cond["segment"])
            if ref not in self.segments:
                raise _fail(path, f"分群不存在: {ref}")
            return self.compile(self.segments[ref], f"{path}.segment", depth + 1)
        if cond == {"true": True}:
            return sa.true()
        raise _fail(path, f"未知条件: {sorted(cond)}")

    # -- leaves -------------------------------------------------------------------------------
    def _attr(self, cond: Mapping[str, Any], path: str) -> ColumnElement[bool]:
        name = cond.get("attr")
        op = cond.get("op", "eq")
        value = cond.get("value")
        if not isinstance(name, str):
            raise _fail(path, "attr 必须是字符串")
        if op not in OPS:
            raise _fail(path, f"未知运算符 {op}")
        if name.startswith("value."):
            key = name.removeprefix("value.")
            if key in INSIGHT_ATTRS:
                column, kind = INSIGHT_ATTRS[key]
                inner = self._op(column, kind, op, value, path)
                return sa.exists().where(col(CustomerInsight.customer_id) == Customer.id, inner)
            if key not in VALUE_ATTRS:
                raise _fail(path, f"未知指标 {name}")
            column, kind = VALUE_ATTRS[key]
            inner = self._op(column, kind, op, value, path)
            return sa.exists().where(col(CustomerValue.customer_id) == Customer.id, inner)
        if name.startswith("custom."):
            key = name.removeprefix("custom.")
            if not key.replace("_", "").isalnum():
                raise _fail(path, f"非法自定义属性 {name}")
            sample = value[0] if isinstance(value, list) and value else value
            element = col(Customer.attributes)[key]
            if isinstance(sample, bool):
                return self._op(element.as_boolean(), "bool", op, value, path)
            if isinstance(sample, int | float):
                return self._op(element.as_float(), "float", op, value, path)
            return self._op(element.as_string(), "str", op, value, path)
        if name not in CUSTOMER_ATTRS:
            raise _fail(path, f"未知属性 {name}")
        column, kind = CUSTOMER_ATTRS[name]
        return self._op(column, kind, op, value, path)

    def _op(self, column: Any, kind: str, op: str, value: Any, path: str) -> ColumnElement[bool]:
        if op == "is_null":
            return column.is_(None)  # type: ignore[no-any-return]
        if op == "not_null":
            return column.is_not(None)  # type: ignore[no-any-return]
        if op in ("within_days", "before_days"):
            if kind not in ("datetime", "date"):
                raise _fail(path, f"{op} 只能用于时间属性")
            cutoff: Any = self.now - _days(value, path)
            if kind == "date":
                cutoff = cutoff.date()
            return column >= cutoff if op == "within_days" else column < cutoff  # type: ignore[no-any-return]
        if op in ("contains", "startswith"):
            if kind != "str" or not isinstance(value, str):
                raise _fail(path, f"{op} 需要字符串属性和字符串值")
            escaped = escape_like(value)
            pattern = f"%{escaped}%" if op == "contains" else f"{escaped}%"
            return column.like(pattern, escape="\\")  # type: ignore[no-any-return]
        if op in ("in", "not_in"):
            if not isinstance(value, list) or not value:
                raise _fail(path, f"{op} 需要非空列表")
            values = [_coerce(v, kind, path) for v in value]
            return column.in_(values) if op == "in" else column.not_in(values)  # type: ignore[no-any-return]
        if op == "between":
            if not isinstance(value, list) or len(value) != 2:
                raise _fail(path, "between 需要 [下限, 上限]")
            low, high = (_coerce(v, kind, path) for v in value)
            return column.between(low, high)  # type: ignore[no-any-return]
        coerced = _coerce(value, kind, path)
        if kind == "bool" and op not in ("eq", "ne"):
            raise _fail(path, "布尔属性只支持 eq / ne")
        return _compare(column, op, coerced)

    def _tag(self, value: Any, path: str) -> ColumnElement[bool]:
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
            raise _fail(path, "tag 需要标签名或标签名列表")
        return sa.exists().where(
            col(CustomerTag.customer_id) == Customer.id,
            col(CustomerTag.tag_id) == Tag.id,
            col(Tag.name).in_(names),
        )

    def _orders(self, spec: Any, path: str) -> ColumnElement[bool]:
        if not isinstance(spec, Mapping):
            raise _fail(path, "orders 需要对象")
        unknown = set(spec) - {"count", "sum", "within_days", "status"}
        if unknown:
            raise _fail(path, f"未知字段 {sorted(unknown)}")
        where: list[Any] = []
        status = spec.get("status", OrderStatus.PAID.value)
        if status not in {s.value for s in OrderStatus}:
            raise _fail(path, f"未知订单状态 {status}")
        where.append(col(Order.status) == status)
        if "within_days" in spec:
            where.append(col(Order.ordered_at) >= self.now - _days(spec["within_days"], path))
        checks: list[tuple[Any, Any, str]] = []
        if "count" in spec:
            checks.append((sa.func.count(), spec["count"], f"{path}.count"))
        if "sum" in spec:
            checks.append((sa.func.coalesce(sa.func.sum(Order.amount), 0), spec["sum"], f"{path}.sum"))
        if self.only_customers is not None:
            where.append(col(Order.customer_id).in_(self.only_customers))
        return _grouped(col(Order.customer_id), where, checks or [(sa.func.count(), {"gte": 1}, path)])

    def _event(self, spec: Any, path: str) -> ColumnElement[bool]:
        if not isinstance(spec, Mapping):
            raise _fail(path, "event 需要对象")
        kind = spec.get("kind")
        if kind not in EVENT_KINDS:
            raise _fail(path, f"未知事件类型 {kind}")
        unknown = set(spec) - {"kind", "name", "count", "within_days"}
        if unknown:
            raise _fail(path, f"未知字段 {sorted(unknown)}")
        cutoff = self.now - _days(spec.get("within_days", MAX_DAYS), path)
        name = spec.get("name")
        if name is not None and (not isinstance(name, str) or not name):
            raise _fail(path, "event.name 必须是非空字符串")
        owner: Any
        if kind == "message":  # inbound messages themselves
            owner = col(Message.customer_id)
            where: list[Any] = [
                col(Message.direction) == "in",
                col(Message.created_at) >= cutoff,
            ]
        elif kind == "ticket":  # tickets opened, optionally of one category
            from models.ticket import Ticket

            owner = col(Ticket.customer_id)
            where = [col(Ticket.created_at) >= cutoff]
            if name:
                where.append(col(Ticket.category) == name)
        else:
            if not name:
                raise _fail(path, "event.name 必须是非空字符串")
            owner = col(CustomerEvent.customer_id)
            where = [
                col(CustomerEvent.kind) == kind,
                col(CustomerEvent.name) == name,
                col(CustomerEvent.created_at) >= cutoff,
            ]
        if self.only_customers is not None:
            where.append(owner.in_(self.only_customers))
        return _grouped(owner, where, [(sa.func.count(), spec.get("count", {"gte": 1}), f"{path}.count")])


def _grouped(owner: Any, where: list[Any], checks: list[tuple[Any, Any, str]]) -> ColumnElement[bool]:
    """Counts and sums over a customer's rows, set-wise: `customer.id [NOT] IN (SELECT … GROUP BY … HAVING …)`.

    One grouped scan for the whole base instead of a correlated subquery per customer. When a customer
    without any row satisfies the checks (e.g. "fewer than 2 orders"), the complement is used.
    """
    having = sa.and_(*(_cmp_spec(agg, spec, path) for agg, spec, path in checks))
    zero_matches = all(_zero_satisfies(spec, path) for _, spec, path in checks)
    grouped = sa.select(owner).where(owner.is_not(None), *where).group_by(owner)
    if zero_matches:
        return col(Customer.id).not_in(grouped.having(sa.not_(having)))
    return col(Customer.id).in_(grouped.having(having))


def _zero_satisfies(spec: Any, path: str) -> bool:
    if isinstance(spec, int | float) and not isinstance(spec, bool):
        spec = {"eq": spec}
    if not isinstance(spec, Mapping) or not spec or set(spec) - CMP_OPS:
        raise _fail(path, "比较需要 {gte: n} 之类的对象")
    for op, value in spec.items():
        if op == "between":
            if not isinstance(value, list) or len(value) != 2:
                raise _fail(path, "between 需要 [下限, 上限]")
            ok = _number(value[0], path) <= 0 <= _number(value[1], path)
        else:
            v = _number(value, path)
            ok = {"eq": v == 0, "ne": v != 0, "gt": v < 0, "gte": v <= 0, "lt": v > 0, "lte": v >= 0}[op]
        if not ok:
            return False
    return True


def _compare(left: Any, op: str, right: Any) -> ColumnElement[bool]:
    match op:
        case "eq":
            return left == right  # type: ignore[no-any-return]
        case "ne":
            return left != right  # type: ignore[no-any-return]
        case "gt":
            return left > right  # type: ignore[no-any-return]
        case "gte":
            return left >= right  # type: ignore[no-any-return]
        case "lt":
            return left < right  # type: ignore[no-any-return]
        case "lte":
            return left <= right  # type: ignore[no-any-return]
    raise ValidationFailed(f"未知比较 {op}")


def _cmp_spec(left: Any, spec: Any, path: str) -> ColumnElement[bool]:
    if isinstance(spec, int | float) and not isinstance(spec, bool):
        spec = {"eq": spec}
    if not isinstance(spec, Mapping) or not spec or set(spec) - CMP_OPS:
        raise _fail(path, "比较需要 {gte: n} 之类的对象")
    parts = []
    for op, value in spec.items():
        if op == "between":
            if not isinstance(value, list) or len(value) != 2:
                raise _fail(path, "between 需要 [下限, 上限]")
            parts.append(left.between(_number(value[0], path), _number(value[1], path)))
        else:
            parts.append(_compare(left, op, _number(value, path)))
    return sa.and_(*parts)


MAX_DAYS = 36500  # "within 100 years": further back than any stored time, yet a date the database can hold


def _days(value: Any, path: str) -> timedelta:
    """A day count for within_days / before_days: 0..MAX_DAYS (10^9 days would overflow datetime)."""
    days = _number(value, path)
    if not 0 <= days <= MAX_DAYS:
        raise _fail(path, f"天数须在 0 到 {MAX_DAYS} 之间: {value!r}")
    return timedelta(days=days)


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise _fail(path, f"需要数字: {value!r}")
    return float(value) if isinstance(value, float | Decimal) else value


def _coerce(value: Any, kind: str, path: str) -> Any:
    """Check a literal against the attribute kind (so a bad rule fails on save, not at run time)."""
    try:
        if kind == "str":
            if not isinstance(value, str):
                raise TypeError
            return value
        if kind in ("int", "float", "decimal"):
            return _number(value, path)
        if kind == "bool":
            if not isinstance(value, bool):
                raise TypeError
            return value
        if kind == "datetime":
            parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        if kind == "date":
            return value if isinstance(value, date) else date.fromisoformat(str(value))
    except (TypeError, ValueError):
        pass
    raise _fail(path, f"值 {value!r} 与属性类型 {kind} 不符")


def base_filter() -> ColumnElement[bool]:
    """Live customers only: merged-away and erased rows never match a rule."""
    return sa.and_(col(Customer.merged_into_id).is_(None), col(Customer.erased_at).is_(None))


def _segment_refs(cond: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(cond, Mapping):
        if "segment" in cond:
            found.add(str(cond["segment"]))
        for value in cond.values():
            found |= _segment_refs(value)
    elif isinstance(cond, list):
        for item in cond:
            found |= _segment_refs(item)
    return found


async def load_segments(session: AsyncSession, cond: Any) -> dict[str, dict[str, Any]]:
    """Conditions of every segment `cond` refers to (by name or id), transitively."""
    loaded: dict[str, dict[str, Any]] = {}
    pending = _segment_refs(cond)
    for _ in range(MAX_DEPTH):
        pending -= set(loaded)
        if not pending:
            break
        ids = [int(p) for p in pending if p.isdigit()]
        rows = (
            await session.exec(select(Segment).where(sa.or_(col(Segment.name).in_(pending), col(Segment.id).in_(ids))))
        ).all()
        for seg in rows:
            loaded[seg.name] = seg.conditions
            loaded[str(seg.id)] = seg.conditions
        missing = {p for p in pending if p not in loaded}
        if missing:
            raise ValidationFailed(f"分群不存在: {', '.join(sorted(missing))}")
        pending = set().union(*(_segment_refs(seg.conditions) for seg in rows))
    return loaded


async def compile_rule(
    session: AsyncSession,
    cond: Any,
    *,
    now: datetime | None = None,
    only_customers: Collection[int] | None = None,
) -> ColumnElement[bool]:
    """Validate and compile `cond` (raises ValidationFailed with the path of the first problem).

    With `only_customers` the expression is only valid for those customers (add `customer.id IN …`):
    aggregate subqueries then read just their rows.
    """
    segments = await load_segments(session, cond)
    return Compiler(now=now or utcnow(), segments=segments, only_customers=only_customers).compile(cond)


async def matching_ids_select(session: AsyncSession, cond: Any, *, now: datetime | None = None) -> sa.Select[Any]:
    expr = await compile_rule(session, cond, now=now)
    return sa.select(col(Customer.id)).where(base_filter(), expr)  # type: ignore[arg-type]


async def count_matching(session: AsyncSession, cond: Any, *, now: datetime | None = None) -> int:
    expr = await compile_rule(session, cond, now=now)
    stmt = sa.select(sa.func.count()).select_from(Customer).where(base_filter(), expr)
    return int((await session.execute(stmt)).scalar_one())


async def sample_matching(
    session: AsyncSession, cond: Any, *, now: datetime | None = None, limit: int = 10
) -> list[Customer]:
    expr = await compile_rule(session, cond, now=now)
    stmt = select(Customer).where(base_filter(), expr).order_by(col(Customer.id)).limit(limit)
    return list((await session.exec(stmt)).all())
