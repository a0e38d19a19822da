"""Admin-defined customer attributes: a typed definition per key, values checked before they are stored."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.scrm import AttributeType, CustomAttributeDef
from scrm.audit import Actor, record_audit
from scrm.errors import Conflict, ValidationFailed


async def define_attribute(
    session: AsyncSession, *, key: str, label: str, type: AttributeType, options: list[str], actor: Actor
) -> CustomAttributeDef:
    """A new attribute (e.g. key "source", label 来源渠道, enum [门店, 线上]); audited."""
    if not key or not key[0].isalpha() or not key.replace("_", "").isalnum() or key != key.lower():
        raise ValidationFailed("属性键只能是小写字母、数字和下划线，且以字母开头")
    if type == AttributeType.ENUM and not options:
        raise ValidationFailed("枚举属性需要选项")
    if (await session.exec(select(CustomAttributeDef).where(col(CustomAttributeDef.key) == key))).first():
        raise Conflict(f"属性 {key} 已存在")
    row = CustomAttributeDef(key=key, label=label, type=type, options=options)
    session.add(row)
    await session.flush()
    record_audit(session, actor=actor, action="attribute.define", object_type="attribute", object_id=row.id,
                 after={"key": key, "label": label, "type": type, "options": options})  # fmt: skip
    return row


async def attribute_defs(session: AsyncSession) -> dict[str, CustomAttributeDef]:
    rows = (await session.exec(select(CustomAttributeDef).order_by(col(CustomAttributeDef.key)))).all()
    return {r.key: r for r in rows}


def coerce_value(definition: CustomAttributeDef, value: Any) -> Any:
    """The value as stored in customer.attributes (JSON), or ValidationFailed saying why not."""
    if value is None:
        return None
    kind = AttributeType(definition.type)
    try:
        if kind == AttributeType.NUMBER:
            if isinstance(value, bool):
                raise TypeError
            number = float(value)
            return int(number) if number.is_integer() else number
        if kind == AttributeType.BOOL:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("true", "1", "是", "yes"):
                return True
            if text in ("false", "0", "否", "no"):
                return False
            raise ValueError
        if kind == AttributeType.DATE:
            return date.fromisoformat(str(value)).isoformat()
        text = str(value).strip()
        if kind == AttributeType.ENUM and text not in definition.options:
            raise ValueError
        return text[:200]
    except (TypeError, ValueError):
        allowed = f"（可选: {'、'.join(definition.options)}）" if kind == AttributeType.ENUM else ""
        raise ValidationFailed(f"属性 {definition.label} 的值 {value!r} 不是{kind.value}{allowed}") from None


async def validate_attributes(session: AsyncSession, values: dict[str, Any]) -> dict[str, Any]:
    """Check values against the definitions; unknown keys are refused so typos don't become attributes."""
    defs = await attribute_defs(session)
    unknown = sorted(set(values) - set(defs))
    if unknown:
        raise ValidationFailed(f"未定义的属性: {', '.join(unknown)}")
    return {key: coerce_value(defs[key], value) for key, value in values.items()}
