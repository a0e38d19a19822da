"""Tags: manual tags, tag rules (validated on save) and their set-wise evaluation in SQL.

A rule owns the customer-tag rows it created (source "rule"); a tag added by hand is never removed
by a rule. Rules run on a schedule for everyone and, shortly after they write, for the customers
who just interacted (`record_events`, then `retag_customers`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Customer, CustomerTag, Tag, utcnow
from models.scrm import CustomerEvent, TagRule
from scrm.audit import Actor, record_audit
from scrm.db import dialect_insert
from scrm.errors import Conflict, NotFound, ValidationFailed
from scrm.rules import base_filter, compile_rule, count_matching, sample_matching

RULE_SOURCE = "rule"


async def ensure_tag(session: AsyncSession, name: str, *, group: str = "") -> Tag:
    """The tag called `name`, created when missing."""
    name = name.strip()
    if not name or len(name) > 32:
        raise ValidationFailed("标签名需要 1-32 个字符")
    tag = (await session.exec(select(Tag).where(col(Tag.name) == name))).first()
    if tag is None:
        tag = Tag(name=name, group=group)
        session.add(tag)
        await session.flush()
    return tag


async def add_tag(
    session: AsyncSession, *, customer_id: int, tag_name: str, actor: Actor, source: str = "manual"
) -> bool:
    """Tag a customer by hand (audited). Returns False when the customer already had it."""
    if await session.get(Customer, customer_id) is None:
        raise NotFound(f"客户 {customer_id} 不存在")
    tag = await ensure_tag(session, tag_name)
    assert tag.id is not None
    existing = await session.get(CustomerTag, (customer_id, tag.id))
    if existing is not None:
        if existing.source != "manual" and source == "manual":
            existing.source = "manual"  # a person confirmed it: rules no longer remove it
        return False
    session.add(CustomerTag(customer_id=customer_id, tag_id=tag.id, source=source))
    record_audit(
        session, actor=actor, action="customer.tag", object_type="customer", object_id=customer_id,
        after={"tag": tag.name, "source": source},
    )  # fmt: skip
    return True


async def remove_tag(session: AsyncSession, *, customer_id: int, tag_name: str, actor: Actor) -> bool:
    tag = (await session.exec(select(Tag).where(col(Tag.name) == tag_name))).first()
    if tag is None:
        return False
    row = await session.get(CustomerTag, (customer_id, tag.id))
    if row is None:
        return False
    await session.delete(row)
    record_audit(
        session, actor=actor, action="customer.untag", object_type="customer", object_id=customer_id,
        before={"tag": tag.name, "source": row.source},
    )  # fmt: skip
    return True


async def customer_tags(session: AsyncSession, customer_id: int) -> list[dict[str, Any]]:
    rows = (
        await session.exec(
            select(Tag.name, CustomerTag.source, CustomerTag.created_at)
            .join(CustomerTag, col(CustomerTag.tag_id) == Tag.id)
            .where(col(CustomerTag.customer_id) == customer_id)
            .order_by(col(CustomerTag.created_at))
        )
    ).all()
    return [{"name": n, "source": s, "created_at": c} for n, s, c in rows]


# -- tag rules ---------------------------------------------------------------------------------


async def save_tag_rule(
    session: AsyncSession,
    *,
    name: str,
    tag_name: str,
    conditions: dict[str, Any],
    actor: Actor,
    mode: str = "sync",
    enabled: bool = True,
    description: str = "",
    rule_id: int | None = None,
) -> TagRule:
    """Create or update a tag rule; the conditions are compiled first so a bad rule is never stored."""
    if mode not in ("sync", "add"):
        raise ValidationFailed("mode 只能是 sync 或 add")
    await compile_rule(session, conditions)
    await ensure_tag(session, tag_name, group="规则")
    clash = (await session.exec(select(TagRule).where(col(TagRule.name) == name))).first()
    if clash is not None and clash.id != rule_id:
        raise Conflict(f"标签规则 {name} 已存在")
    if rule_id is None:
        rule = TagRule(name=name, tag_name=tag_name, conditions=conditions, mode=mode, enabled=enabled,
                       description=description)  # fmt: skip
        session.add(rule)
        before: dict[str, Any] = {}
    else:
        found = await session.get(TagRule, rule_id)
        if found is None:
            raise NotFound(f"标签规则 {rule_id} 不存在")
        rule = found
        before = rule.model_dump(include={"name", "tag_name", "conditions", "mode", "enabled"})
        rule.name, rule.tag_name, rule.conditions = name, tag_name, conditions
        rule.mode, rule.enabled, rule.description = mode, enabled, description
        rule.updated_at = utcnow()
    await session.flush()
    record_audit(
        session, actor=actor, action="tag_rule.save", object_type="tag_rule", object_id=rule.id,
        before=before, after=rule.model_dump(include={"name", "tag_name", "conditions", "mode", "enabled"}),
    )  # fmt: skip
    return rule


@dataclass(frozen=True, slots=True)
class RulePreview:
    count: int
    examples: list[dict[str, Any]]


async def preview_conditions(
    session: AsyncSession, conditions: dict[str, Any], *, now: datetime | None = None, examples: int = 5
) -> RulePreview:
    """How many customers match now, and a few of them (ids and masked names)."""
    from scrm.privacy import mask_name

    count = await count_matching(session, conditions, now=now)
    sample = await sample_matching(session, conditions, now=now, limit=examples)
    return RulePreview(
        count=count,
        examples=[{"id": c.id, "name": mask_name(c.name), "stage": c.lifecycle_stage} for c in sample],
    )


@dataclass(frozen=True, slots=True)
class RuleRunResult:
    rule: str
    added: int
    removed: int
    matching: int


async def apply_tag_rule(session: AsyncSession, rule: TagRule, *, now: datetime | None = None) -> RuleRunResult:
    """Evaluate one rule for the whole base: INSERT … SELECT the new matches, DELETE rule tags that no longer match."""
    now = now or utcnow()
    assert session.bind is not None
    if session.bind.dialect.name == "postgresql":
        await session.execute(sa.text("SET LOCAL work_mem = '128MB'"))  # grouped scans over all orders, in memory
    expr = await compile_rule(session, rule.conditions, now=now)
    tag = await ensure_tag(session, rule.tag_name, group="规则")
    scope: list[Any] = [base_filter(), expr]
    already = sa.exists().where(col(CustomerTag.customer_id) == Customer.id, col(CustomerTag.tag_id) == tag.id)
    new_matches = sa.select(
        col(Customer.id),
        sa.literal(tag.id, sa.Integer),
        sa.literal(RULE_SOURCE, sa.String),
        sa.literal(now, sa.DateTime(timezone=True)),
    ).where(*scope, ~already)
    insert = sa.insert(CustomerTag).from_select(["customer_id", "tag_id", "source", "created_at"], new_matches)
    added = (await session.execute(insert)).rowcount or 0  # type: ignore[attr-defined]
    removed = 0
    if rule.mode == "sync":
        still = sa.select(col(Customer.id)).where(*scope)  # type: ignore[arg-type]
        delete = sa.delete(CustomerTag).where(
            col(CustomerTag.tag_id) == tag.id,
            col(CustomerTag.source) == RULE_SOURCE,
            col(CustomerTag.customer_id).not_in(still),
        )
        removed = (await session.execute(delete)).rowcount or 0  # type: ignore[attr-defined]
    count = sa.select(sa.func.count()).select_from(CustomerTag).where(col(CustomerTag.tag_id) == tag.id)
    matching = int((await session.execute(count)).scalar_one())
    rule.last_run_at, rule.last_count = now, matching
    return RuleRunResult(rule=rule.name, added=added, removed=removed, matching=matching)


async def run_tag_rules(session: AsyncSession, *, now: datetime | None = None) -> list[RuleRunResult]:
    rules = (await session.exec(select(TagRule).where(col(TagRule.enabled)).order_by(col(TagRule.id)))).all()
    return [await apply_tag_rule(session, r, now=now) for r in rules]


async def record_events(session: AsyncSession, *, customer_id: int, events: dict[str, str], at: datetime) -> None:
    """Countable interaction events (an NLU intent, an FAQ topic …) for tag rules, in one INSERT."""
    rows = [{"customer_id": customer_id, "kind": k, "name": name[:64], "created_at": at} for k, name in events.items()]
    if rows:
        await session.execute(sa.insert(CustomerEvent), rows)


async def retag_customers(
    session: AsyncSession, *, customer_ids: Collection[int], now: datetime
) -> list[RuleRunResult]:
    """Every enabled rule for a few customers (those who just wrote): one SELECT of all verdicts,
    writes only for what changed.

    Same outcome as the set-wise `apply_tag_rule` restricted to these customers, without a statement
    per rule and customer. `matching` is not counted (-1).
    """
    ids = sorted(set(customer_ids))
    rules = (await session.exec(select(TagRule).where(col(TagRule.enabled)).order_by(col(TagRule.id)))).all()
    if not rules or not ids:
        return []
    verdicts = [
        sa.case((await compile_rule(session, r.conditions, now=now, only_customers=ids), True), else_=False)
        for r in rules
    ]
    rows = (
        await session.execute(sa.select(col(Customer.id), *verdicts).where(base_filter(), col(Customer.id).in_(ids)))
    ).all()  # merged-away and erased customers are absent: nothing to tag
    held_rows = await session.execute(
        sa.select(col(CustomerTag.customer_id), col(Tag.name), col(CustomerTag.source))
        .join(Tag, col(Tag.id) == col(CustomerTag.tag_id))
        .where(col(CustomerTag.customer_id).in_(ids), col(Tag.name).in_({r.tag_name for r in rules}))
    )
    held: dict[tuple[int, str], str] = {(cid, name): source for cid, name, source in held_rows.all()}
    before = {key for key, source in held.items() if source == RULE_SOURCE}
    added: Counter[str] = Counter()
    removed: Counter[str] = Counter()
    for customer_id, *matches in rows:
        for rule, matches_rule in zip(rules, matches, strict=True):  # in order: two rules may share a tag
            key = (customer_id, rule.tag_name)
            if matches_rule and key not in held:
                held[key] = RULE_SOURCE
                added[rule.name] += 1
            elif not matches_rule and held.get(key) == RULE_SOURCE and rule.mode == "sync":
                del held[key]
                removed[rule.name] += 1
    after = {key for key, source in held.items() if source == RULE_SOURCE}
    await _write_rule_tags(session, adds=after - before, drops=before - after, now=now)
    return [RuleRunResult(rule=r.name, added=added[r.name], removed=removed[r.name], matching=-1) for r in rules]


async def _write_rule_tags(
    session: AsyncSession, *, adds: set[tuple[int, str]], drops: set[tuple[int, str]], now: datetime
) -> None:
    tag_ids: dict[str, int] = {}
    for name in {n for _, n in adds | drops}:
        tag = await ensure_tag(session, name, group="规则")
        assert tag.id is not None
        tag_ids[name] = tag.id
    if adds:  # another worker may have tagged the same customer meanwhile: theirs stands
        rows = [{"customer_id": c, "tag_id": tag_ids[n], "source": RULE_SOURCE, "created_at": now} for c, n in adds]
        await session.execute(dialect_insert(session)(CustomerTag).on_conflict_do_nothing(), rows)
    for cid, name in drops:
        await session.execute(
            sa.delete(CustomerTag).where(
                col(CustomerTag.customer_id) == cid,
                col(CustomerTag.tag_id) == tag_ids[name],
                col(CustomerTag.source) == RULE_SOURCE,
            )
        )


async def seed_tag_rules(session: AsyncSession, rules: list[dict[str, Any]]) -> int:
    """Create the default rules from config/scrm.yml that do not exist yet (idempotent)."""
    created = 0
    for spec in rules:
        exists = (await session.exec(select(TagRule).where(col(TagRule.name) == spec["name"]))).first()
        if exists is None:
            await save_tag_rule(
                session, name=spec["name"], tag_name=spec["tag_name"], conditions=spec["conditions"],
                description=spec.get("description", ""), actor=Actor.system("seed"),
            )  # fmt: skip
            created += 1
    return created
