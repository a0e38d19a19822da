"""SCRM API (`/api/v1/customers…`, tags, tag rules, segments, care rules, orders:bulk, NPS) and jobs.

Personal data (names, phones) is masked for agents; supervisors and admins see it. Every write is
one scrm verb in one transaction with its audit row. Scheduler jobs are safe with several workers:
care runs rely on the ledger's unique constraint; recomputes and tag-rule runs take a PostgreSQL
advisory lock so only one worker does them at a time.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
import structlog
from aiohttp import web
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.keys import db_key, outbox_key, scheduler_key
from bot.web import customer_views
from bot.web.api import ADMIN, STAFF, SUPERVISOR, ApiRouter, Day, path_id
from bot.web.auth import sees_personal, viewer
from bot.web.ratelimit import RateLimited, counters
from models import ChannelIdentity, Customer, CustomerTag, Message, Tag, User, utcnow
from models.scrm import (
    AttributeType,
    CareDelivery,
    CareRule,
    Consent,
    CustomerValue,
    LifecycleEvent,
    MergeRecord,
    Order,
    Segment,
    TagRule,
)
from models.ticket import SurveyResponse, Ticket
from scrm import attributes, care, identity, importing, nps, privacy, segments, tags, value
from scrm.audit import Actor, record_audit
from scrm.calendar import day_bounds, local_today
from scrm.db import SessionFactory, make_session_factory, transaction
from scrm.defaults import scrm_config
from scrm.errors import NotFound, ValidationFailed
from scrm.insight.recommend import customer_insight
from scrm.rules import base_filter, compile_rule, escape_like

log = structlog.get_logger(__name__)
router = ApiRouter("scrm")
CARE_EVERY_MINUTES = 10
TAG_RULES_EVERY_MINUTES = 30


def actor_of(user: User) -> Actor:
    return Actor(id=user.id, name=user.username, role=str(user.role))


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime | date) else value


# -- customers -----------------------------------------------------------------------------------


def customer_view(c: Customer, user: User) -> dict[str, Any]:
    full, shown = sees_personal(user), viewer(user)
    return {
        "id": c.id,
        "name": shown.name(c.name),
        "phone": shown.phone(c.phone),
        "phone_verified": c.phone_verified,
        "gender": c.gender,
        "birthday": _iso(c.birthday) if full else None,
        "birthday_calendar": c.birthday_calendar,
        "birth_month": c.birth_month,
        "birth_day": c.birth_day,
        "region": c.region,
        "member_level": c.member_level,
        "points": c.points,
        "lifecycle_stage": c.lifecycle_stage,
        "lifecycle_changed_at": _iso(c.lifecycle_changed_at),
        "attributes": c.attributes,
        "created_at": _iso(c.created_at),
        "last_active_at": _iso(c.last_active_at),
        "merged_into_id": c.merged_into_id,
        "erased": c.erased_at is not None,
    }


class CustomerQuery(BaseModel):
    q: str | None = Field(None, max_length=64)
    tag: str | None = None
    stage: str | None = None
    segment: str | None = None
    tier: str | None = Field(None, max_length=16)  # value tier
    channel: str | None = Field(None, max_length=16)  # has an identity on this channel
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0)


@dataclass
class LookupPolicy:
    """Agents find a customer by a complete phone number only, and this many times per window each."""

    per_window: int = 30
    window_seconds: int = 600


lookup_policy_key = web.AppKey("customer_lookup_policy", LookupPolicy)


async def _search(request: web.Request, user: User, q: str) -> Any:
    """Supervisors and admins: name or phone contains `q` (wildcards are literal). Agents see names and
    phones masked, so they must not filter on them: one exact, complete phone number, rate limited per
    user, or a digit-by-digit probe would rebuild the hidden number."""
    if sees_personal(user):
        like = f"%{escape_like(q)}%"
        return sa.or_(col(Customer.name).like(like, escape="\\"), col(Customer.phone).like(like, escape="\\"))
    policy = request.app[lookup_policy_key]
    looked_up, left = await counters(request.app).hit(f"customer-lookups:{user.id}", policy.window_seconds)
    if looked_up > policy.per_window:
        log.warning("customer_lookup_rate_limited", user_id=user.id)
        raise RateLimited("查找客户过于频繁，请稍后再试", left)
    phone = privacy.normalize_phone(q)
    if phone is None:
        raise ValidationFailed("客服只能用完整的手机号查找客户（例如 13912345678）")
    return col(Customer.phone) == phone


@router.get("/customers", roles=STAFF, query=CustomerQuery)
async def list_customers(request: web.Request, user: User, query: CustomerQuery) -> dict[str, Any]:
    """Customers, newest first; filter by name/phone text (agents: one complete phone number), tag,
    lifecycle stage or segment."""
    search = await _search(request, user, query.q) if query.q else None
    async with request.app[db_key]() as session:
        where: list[Any] = [base_filter()]
        if search is not None:
            where.append(search)
        where.extend(customer_views.value_and_channel(query.tier, query.channel))
        if query.stage:
            where.append(col(Customer.lifecycle_stage) == query.stage)
        if query.tag:
            where.append(await compile_rule(session, {"tag": query.tag}))
        if query.segment:
            seg = await segments.get_segment(session, query.segment)
            where.append(await compile_rule(session, seg.conditions))
        total = (await session.execute(sa.select(sa.func.count()).select_from(Customer).where(*where))).scalar_one()
        rows = (
            await session.exec(
                select(Customer).where(*where).order_by(col(Customer.id).desc()).offset(query.offset).limit(query.limit)
            )
        ).all()
        extras = await customer_views.list_extras(session, [c.id for c in rows if c.id is not None])
    return {"total": int(total), "items": [{**customer_view(c, user), **extras.get(c.id or 0, {})} for c in rows]}


@router.get("/customers/{customer_id}", roles=STAFF)
async def customer_profile(request: web.Request, user: User) -> dict[str, Any]:
    """The 360° profile: identities, tags, value/RFM, consent, order summary, merges."""
    customer_id = path_id(request, "customer_id")
    async with request.app[db_key]() as session:
        customer = await session.get(Customer, customer_id)
        if customer is None:
            raise NotFound(f"客户 {customer_id} 不存在")
        identities = (
            await session.exec(select(ChannelIdentity).where(col(ChannelIdentity.customer_id) == customer_id))
        ).all()
        val = await session.get(CustomerValue, customer_id)
        consents = (await session.exec(select(Consent).where(col(Consent.customer_id) == customer_id))).all()
        merges = (
            await session.exec(
                select(MergeRecord).where(
                    sa.or_(col(MergeRecord.target_id) == customer_id, col(MergeRecord.source_id) == customer_id)
                )
            )
        ).all()
        tag_rows = await tags.customer_tags(session, customer_id)
        insight = await customer_insight(session, customer_id)
        orders = (
            await session.execute(
                sa.select(
                    sa.func.count(), sa.func.coalesce(sa.func.sum(Order.amount), 0), sa.func.max(Order.ordered_at)
                ).where(col(Order.customer_id) == customer_id, col(Order.status) == "paid")
            )
        ).one()  # fmt: skip
    shown = viewer(user)
    return {
        "customer": customer_view(customer, user),
        "identities": [
            {
                "id": i.id,
                "channel": i.channel,
                "app_id": i.app_id,
                "external_id": shown.phone(i.external_id),
                "unionid": bool(i.unionid),
                "status": i.status,
                "last_inbound_at": _iso(i.last_inbound_at),
            }
            for i in identities
        ],
        "tags": [{"name": t["name"], "source": t["source"], "created_at": _iso(t["created_at"])} for t in tag_rows],
        "value": val.model_dump(mode="json") if val else None,
        "insight": insight,  # churn risk, expected value, persona, 推荐商品 (scrm.insight)
        "orders": {"count": int(orders[0]), "total": str(orders[1]), "last_at": _iso(orders[2])},
        "consents": [
            {"channel": c.channel, "purpose": c.purpose, "granted": c.granted, "updated_at": _iso(c.updated_at)}
            for c in consents
        ],
        "merges": [m.model_dump(mode="json") for m in merges],
    }


class LimitQuery(BaseModel):
    limit: int = Field(100, ge=1, le=500)


@router.get("/customers/{customer_id}/timeline", roles=STAFF, query=LimitQuery)
async def customer_timeline(request: web.Request, user: User, query: LimitQuery) -> dict[str, Any]:
    """Messages, tickets, surveys, orders, care messages and lifecycle changes, newest first."""
    customer_id = path_id(request, "customer_id")
    limit = query.limit
    items: list[dict[str, Any]] = []
    async with request.app[db_key]() as session:
        if (customer := await session.get(Customer, customer_id)) is None:
            raise NotFound(f"客户 {customer_id} 不存在")
        shown = viewer(user, customer.name)  # care messages and replies carry the customer's name

        async def latest(model: Any, at: Any) -> list[Any]:
            stmt = select(model).where(model.customer_id == customer_id).order_by(at.desc()).limit(limit)
            return list((await session.exec(stmt)).all())

        for m in await latest(Message, col(Message.created_at)):
            items.append({"type": "message", "at": m.created_at, "direction": m.direction, "sender": m.sender,
                          "channel": m.channel, "text": shown.text(m.text), "id": m.id})  # fmt: skip
        for t in await latest(Ticket, col(Ticket.created_at)):
            items.append({"type": "ticket", "at": t.created_at, "id": t.id, "number": t.number,
                          "category": t.category, "status": t.status, "severity": t.severity})  # fmt: skip
        for s in await latest(SurveyResponse, col(SurveyResponse.created_at)):
            items.append({"type": "survey", "at": s.created_at, "kind": s.kind, "score": s.score,
                          "ticket_id": s.ticket_id})  # fmt: skip
        for o in await latest(Order, col(Order.ordered_at)):
            items.append({"type": "order", "at": o.ordered_at, "order_no": o.order_no, "amount": str(o.amount),
                          "status": o.status})  # fmt: skip
        for d in await latest(CareDelivery, col(CareDelivery.created_at)):
            items.append({"type": "care", "at": d.sent_at or d.created_at, "rule_id": d.rule_id, "status": d.status,
                          "reason": d.reason, "text": shown.text(d.text)})  # fmt: skip
        for e in await latest(LifecycleEvent, col(LifecycleEvent.created_at)):
            items.append({"type": e.kind, "at": e.created_at, "from": e.from_value, "to": e.to_value})
    for item in items:
        at = item["at"]
        item["at"] = (at if at.tzinfo else at.replace(tzinfo=UTC)).isoformat()
    items.sort(key=lambda i: i["at"], reverse=True)
    return {"items": items[:limit]}


class ProfileBody(BaseModel):
    name: str | None = Field(None, max_length=64)
    gender: str | None = Field(None, max_length=8)
    region: str | None = Field(None, max_length=64)
    birthday: date | None = None
    birthday_calendar: str = Field("solar", pattern="^(solar|lunar)$")
    member_level: str | None = Field(None, max_length=16)
    points: int = Field(0, ge=0)  # NOT NULL: null is a 422 (the other fields may be cleared with null)
    attributes: dict[str, Any] | None = None


@router.patch("/customers/{customer_id}", roles=SUPERVISOR, body=ProfileBody)
async def update_profile(request: web.Request, user: User, body: ProfileBody) -> dict[str, Any]:
    """Edit profile fields (a lunar birthday is given as the solar date of birth); audited."""
    customer_id = path_id(request, "customer_id")
    async with transaction(request.app[db_key]) as session:
        customer = await session.get(Customer, customer_id)
        if customer is None:
            raise NotFound(f"客户 {customer_id} 不存在")
        changes = body.model_dump(exclude_unset=True)
        before = {k: getattr(customer, k, None) for k in changes}
        for key in ("name", "gender", "region", "member_level", "points"):
            if key in changes:
                setattr(customer, key, changes[key])
        if "attributes" in changes:  # checked against the admin-defined attribute types
            checked = await attributes.validate_attributes(session, body.attributes or {})
            customer.attributes = {**customer.attributes, **checked}
        if body.birthday is not None:
            customer.birthday, customer.birthday_calendar = body.birthday, body.birthday_calendar
            if body.birthday_calendar == "lunar":
                b = body.birthday
                customer.birth_month, customer.birth_day = care.lunar_to_month_day(b.year, b.month, b.day)
            else:
                customer.birth_month, customer.birth_day = body.birthday.month, body.birthday.day
        session.add(customer)
        record_audit(session, actor=actor_of(user), action="customer.update", object_type="customer",
                     object_id=customer_id, before=before, after=changes)  # fmt: skip
    return customer_view(customer, user)


class AttributeBody(BaseModel):
    key: str = Field(min_length=1, max_length=32)
    label: str = Field(min_length=1, max_length=32)
    type: AttributeType = AttributeType.STRING
    options: list[str] = Field(default_factory=list)


@router.get("/attributes", roles=STAFF)
async def list_attributes(request: web.Request, user: User) -> list[dict[str, Any]]:
    """Admin-defined customer attributes and their types."""
    async with request.app[db_key]() as session:
        return [d.model_dump(mode="json") for d in (await attributes.attribute_defs(session)).values()]


@router.post("/attributes", roles=ADMIN, body=AttributeBody, status=201)
async def define_attribute(request: web.Request, user: User, body: AttributeBody) -> dict[str, Any]:
    async with transaction(request.app[db_key]) as session:
        row = await attributes.define_attribute(session, actor=actor_of(user), **body.model_dump())
    return row.model_dump(mode="json")


class TagBody(BaseModel):
    name: str = Field(min_length=1, max_length=32)


@router.post("/customers/{customer_id}/tags", roles=STAFF, body=TagBody, status=201)
async def tag_customer(request: web.Request, user: User, body: TagBody) -> dict[str, Any]:
    customer_id = path_id(request, "customer_id")
    async with transaction(request.app[db_key]) as session:
        added = await tags.add_tag(session, customer_id=customer_id, tag_name=body.name, actor=actor_of(user))
    return {"added": added}


@router.delete("/customers/{customer_id}/tags/{tag}", roles=STAFF, status=204)
async def untag_customer(request: web.Request, user: User) -> None:
    customer_id = path_id(request, "customer_id")
    async with transaction(request.app[db_key]) as session:
        removed = await tags.remove_tag(
            session, customer_id=customer_id, tag_name=request.match_info["tag"], actor=actor_of(user)
        )
    if not removed:
        raise NotFound("该客户没有这个标签")


class MergeBody(BaseModel):
    source_id: int


@router.post("/customers/{customer_id}/merge", roles=SUPERVISOR, body=MergeBody, status=201)
async def merge_into(request: web.Request, user: User, body: MergeBody) -> dict[str, Any]:
    """Merge customer `source_id` into this one (explicit binding); returns the merge record."""
    target_id = path_id(request, "customer_id")
    async with transaction(request.app[db_key]) as session:
        record = await identity.merge_customers(
            session, source_id=body.source_id, target_id=target_id, actor=actor_of(user)
        )
    return record.model_dump(mode="json")


@router.post("/merges/{merge_id}/undo", roles=SUPERVISOR)
async def undo_merge(request: web.Request, user: User) -> dict[str, Any]:
    async with transaction(request.app[db_key]) as session:
        record = await identity.undo_merge(session, merge_id=path_id(request, "merge_id"), actor=actor_of(user))
    return record.model_dump(mode="json")


class ConsentBody(BaseModel):
    granted: bool
    channel: str = Field("*", max_length=16)
    purpose: str = Field("care", pattern="^(care|marketing|survey|\\*)$")


@router.post("/customers/{customer_id}/consent", roles=STAFF, body=ConsentBody)
async def set_consent(request: web.Request, user: User, body: ConsentBody) -> dict[str, Any]:
    customer_id = path_id(request, "customer_id")
    async with transaction(request.app[db_key]) as session:
        if await session.get(Customer, customer_id) is None:
            raise NotFound(f"客户 {customer_id} 不存在")
        row = await care.set_consent(session, customer_id=customer_id, granted=body.granted, channel=body.channel,
                                     purpose=body.purpose, actor=actor_of(user), source="staff")  # fmt: skip
    return row.model_dump(mode="json")


@router.get("/customers/{customer_id}/export", roles=ADMIN)
async def export_customer(request: web.Request, user: User) -> dict[str, Any]:
    """Everything stored about one customer (PIPL access request); audited."""
    async with transaction(request.app[db_key]) as session:
        return await privacy.export_customer(session, customer_id=path_id(request, "customer_id"), actor=actor_of(user))


@router.post("/customers/{customer_id}/erase", roles=ADMIN)
async def erase_customer(request: web.Request, user: User) -> dict[str, Any]:
    """Erase personal data, keeping anonymous statistics; audited."""
    customer_id = path_id(request, "customer_id")
    async with transaction(request.app[db_key]) as session:
        counts = await privacy.erase_customer(session, customer_id=customer_id, actor=actor_of(user))
    return {"erased": counts}


# -- bulk imports ----------------------------------------------------------------------------------


class BulkOrders(BaseModel):
    orders: list[dict[str, Any]] = Field(min_length=1, max_length=importing.MAX_ROWS)


class BulkCustomers(BaseModel):
    customers: list[dict[str, Any]] = Field(min_length=1, max_length=importing.MAX_ROWS)


def _import_failed(exc: importing.ImportFailed) -> web.Response:
    errors = [{"row": e.row, "field": e.field, "message": e.message} for e in exc.errors]
    return web.json_response({"code": exc.code, "message": exc.message, "errors": errors}, status=422)


@router.post("/orders:bulk", roles=SUPERVISOR, body=BulkOrders)
async def bulk_orders(request: web.Request, user: User, body: BulkOrders) -> Any:
    """Import orders (idempotent by order_no); any bad row → 422 with per-row errors and nothing written."""
    try:
        async with transaction(request.app[db_key]) as session:
            result = await importing.import_orders(session, body.orders, actor=actor_of(user), source="api")
    except importing.ImportFailed as exc:
        return _import_failed(exc)
    return result.as_dict()


@router.post("/customers:bulk", roles=SUPERVISOR, body=BulkCustomers)
async def bulk_customers(request: web.Request, user: User, body: BulkCustomers) -> Any:
    """Import customers (idempotent by id or phone), all or nothing."""
    try:
        async with transaction(request.app[db_key]) as session:
            result = await importing.import_customers(session, body.customers, actor=actor_of(user))
    except importing.ImportFailed as exc:
        return _import_failed(exc)
    return result.as_dict()


# -- tags and tag rules ----------------------------------------------------------------------------


@router.get("/tags", roles=STAFF)
async def list_tags(request: web.Request, user: User) -> list[dict[str, Any]]:
    """Every tag with how many customers carry it."""
    async with request.app[db_key]() as session:
        rows = (
            await session.execute(
                sa.select(Tag, sa.func.count(col(CustomerTag.customer_id)))
                .outerjoin(CustomerTag, col(CustomerTag.tag_id) == Tag.id)
                .group_by(col(Tag.id))
                .order_by(col(Tag.name))
            )
        ).all()
    return [{"id": t.id, "name": t.name, "group": t.group, "color": t.color, "customers": int(n)} for t, n in rows]


class ConditionsBody(BaseModel):
    conditions: dict[str, Any]


class TagRuleBody(ConditionsBody):
    name: str = Field(min_length=1, max_length=64)
    tag_name: str = Field(min_length=1, max_length=32)
    mode: str = Field("sync", pattern="^(sync|add)$")
    enabled: bool = True
    description: str = Field("", max_length=200)


async def _preview(session: AsyncSession, conditions: dict[str, Any]) -> dict[str, Any]:
    preview = await tags.preview_conditions(session, conditions)
    return {"count": preview.count, "examples": preview.examples}


@router.get("/tag-rules", roles=SUPERVISOR)
async def list_tag_rules(request: web.Request, user: User) -> list[dict[str, Any]]:
    async with request.app[db_key]() as session:
        rules = (await session.exec(select(TagRule).order_by(col(TagRule.id)))).all()
    return [r.model_dump(mode="json") for r in rules]


@router.post("/tag-rules:preview", roles=SUPERVISOR, body=ConditionsBody)
async def preview_tag_rule(request: web.Request, user: User, body: ConditionsBody) -> dict[str, Any]:
    """How many customers the conditions match now, with a few (masked) examples; nothing is written."""
    async with request.app[db_key]() as session:
        return await _preview(session, body.conditions)


@router.post("/tag-rules", roles=ADMIN, body=TagRuleBody, status=201)
async def create_tag_rule(request: web.Request, user: User, body: TagRuleBody) -> dict[str, Any]:
    """Create a rule (validated by compiling it) and return it with its preview count."""
    async with transaction(request.app[db_key]) as session:
        rule = await tags.save_tag_rule(session, actor=actor_of(user), **body.model_dump())
        preview = await _preview(session, rule.conditions)
    return {"rule": rule.model_dump(mode="json"), "preview": preview}


@router.put("/tag-rules/{rule_id}", roles=ADMIN, body=TagRuleBody)
async def update_tag_rule(request: web.Request, user: User, body: TagRuleBody) -> dict[str, Any]:
    async with transaction(request.app[db_key]) as session:
        rule = await tags.save_tag_rule(session, actor=actor_of(user), rule_id=path_id(request, "rule_id"),
                                        **body.model_dump())  # fmt: skip
        preview = await _preview(session, rule.conditions)
    return {"rule": rule.model_dump(mode="json"), "preview": preview}


@router.post("/tag-rules/{rule_id}/run", roles=ADMIN)
async def run_tag_rule(request: web.Request, user: User) -> dict[str, Any]:
    """Evaluate one rule for everyone now (set-wise in SQL)."""
    async with transaction(request.app[db_key]) as session:
        rule = await session.get(TagRule, path_id(request, "rule_id"))
        if rule is None:
            raise NotFound("标签规则不存在")
        result = await tags.apply_tag_rule(session, rule)
    return {"added": result.added, "removed": result.removed, "matching": result.matching}


# -- segments --------------------------------------------------------------------------------------


class SegmentBody(ConditionsBody):
    name: str = Field(min_length=1, max_length=64)
    description: str = Field("", max_length=200)


@router.get("/segments", roles=STAFF)
async def list_segments(request: web.Request, user: User) -> list[dict[str, Any]]:
    """Saved segments with live counts."""
    async with request.app[db_key]() as session:
        rows = (await session.exec(select(Segment).order_by(col(Segment.id)))).all()
        out = []
        for seg in rows:
            out.append({**seg.model_dump(mode="json"), "count": await segments.segment_count(session, seg)})
    return out


@router.post("/segments:preview", roles=SUPERVISOR, body=ConditionsBody)
async def preview_segment(request: web.Request, user: User, body: ConditionsBody) -> dict[str, Any]:
    """Like tag-rules:preview (supervisors): conditions on phone or birthday would answer questions about
    data agents see masked."""
    async with request.app[db_key]() as session:
        return await _preview(session, body.conditions)


@router.post("/segments", roles=SUPERVISOR, body=SegmentBody, status=201)
async def create_segment(request: web.Request, user: User, body: SegmentBody) -> dict[str, Any]:
    async with transaction(request.app[db_key]) as session:
        seg = await segments.save_segment(session, actor=actor_of(user), **body.model_dump())
        count = await segments.segment_count(session, seg)
    return {**seg.model_dump(mode="json"), "count": count}


@router.put("/segments/{segment_id}", roles=SUPERVISOR, body=SegmentBody)
async def update_segment(request: web.Request, user: User, body: SegmentBody) -> dict[str, Any]:
    async with transaction(request.app[db_key]) as session:
        seg = await segments.save_segment(session, actor=actor_of(user), segment_id=path_id(request, "segment_id"),
                                          **body.model_dump())  # fmt: skip
        count = await segments.segment_count(session, seg)
    return {**seg.model_dump(mode="json"), "count": count}


@router.delete("/segments/{segment_id}", roles=SUPERVISOR, status=204)
async def delete_segment(request: web.Request, user: User) -> None:
    async with transaction(request.app[db_key]) as session:
        await segments.delete_segment(session, segment_id=path_id(request, "segment_id"), actor=actor_of(user))


@router.get("/segments/{segment_id}/export", roles=SUPERVISOR)
async def export_segment(request: web.Request, user: User) -> web.Response:
    """Members as CSV (masked unless the user sees personal data, or asks ?masked=1); audited."""
    masked = not sees_personal(user) or request.query.get("masked") in ("1", "true")
    async with transaction(request.app[db_key]) as session:
        seg = await session.get(Segment, path_id(request, "segment_id"))
        if seg is None:
            raise NotFound("分群不存在")
        text = await segments.export_csv(session, seg, masked=masked, actor=actor_of(user))
    return web.Response(
        text=text,
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="segment-{seg.id}.csv"'},
    )


# -- care rules ------------------------------------------------------------------------------------


class CareRuleBody(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    kind: str
    params: dict[str, Any] = Field(default_factory=dict)
    segment_id: int | None = None
    conditions: dict[str, Any] = Field(default_factory=dict)
    channels: list[str] = Field(default_factory=list)
    template: str = Field(min_length=1, max_length=2000)
    wechat_template: dict[str, Any] | None = None
    send_hour: int = Field(10, ge=0, le=23)
    enabled: bool = True


@router.get("/care-rules", roles=SUPERVISOR)
async def list_care_rules(request: web.Request, user: User) -> list[dict[str, Any]]:
    """Care rules with their ledger results (sent, skipped by reason, opted out, replied, failed)."""
    async with request.app[db_key]() as session:
        rules = (await session.exec(select(CareRule).order_by(col(CareRule.id)))).all()
        return [{**r.model_dump(mode="json"), "results": await care.rule_stats(session, r.id or 0)} for r in rules]


@router.post("/care-rules", roles=ADMIN, body=CareRuleBody, status=201)
async def create_care_rule(request: web.Request, user: User, body: CareRuleBody) -> dict[str, Any]:
    async with transaction(request.app[db_key]) as session:
        rule = await care.save_care_rule(session, data=body.model_dump(), actor=actor_of(user))
    return rule.model_dump(mode="json")


@router.put("/care-rules/{rule_id}", roles=ADMIN, body=CareRuleBody)
async def update_care_rule(request: web.Request, user: User, body: CareRuleBody) -> dict[str, Any]:
    async with transaction(request.app[db_key]) as session:
        rule = await care.save_care_rule(session, data=body.model_dump(), actor=actor_of(user),
                                         rule_id=path_id(request, "rule_id"))  # fmt: skip
    return rule.model_dump(mode="json")


class CarePreviewQuery(BaseModel):
    date: Day | None = None


@router.get("/care-rules/{rule_id}/preview", roles=SUPERVISOR, query=CarePreviewQuery)
async def preview_care_rule(request: web.Request, user: User, query: CarePreviewQuery) -> dict[str, Any]:
    """Who would get what on ?date= (default today), without sending or writing anything."""
    async with request.app[db_key]() as session:
        rule = await care.get_rule(session, path_id(request, "rule_id"))
        total, rows = await care.preview(session, rule, day=query.date)
    full = sees_personal(user)
    return {
        "total": total,
        "rows": [
            {"customer_id": r.customer_id, "period": r.period, "outcome": r.outcome, "channel": r.channel,
             "via": r.via, "send_at": _iso(r.send_at), "text": r.text if full else privacy.mask_text(r.text)}
            for r in rows
        ],
    }  # fmt: skip


@router.post("/care-rules/{rule_id}/run", roles=ADMIN, query=CarePreviewQuery)
async def run_care_rule(request: web.Request, user: User, query: CarePreviewQuery) -> dict[str, Any]:
    """Run one evaluation now (for ?date=); the ledger makes a repeat a no-op."""
    factory = request.app[db_key]
    result = await care.run_rule(factory, path_id(request, "rule_id"), day=query.date)
    async with transaction(factory) as session:
        record_audit(
            session,
            actor=actor_of(user),
            action="care_rule.run",
            object_type="care_rule",
            object_id=path_id(request, "rule_id"),
            after={"claimed": result.claimed, **result.outcomes},
        )
    request.app[outbox_key].poke()
    return {"rule": result.rule, "day": result.period_day, "claimed": result.claimed, "outcomes": result.outcomes}


class DeliveriesQuery(LimitQuery):
    status: str | None = Field(None, max_length=16)


@router.get("/care-rules/{rule_id}/deliveries", roles=SUPERVISOR, query=DeliveriesQuery)
async def care_deliveries(request: web.Request, user: User, query: DeliveriesQuery) -> list[dict[str, Any]]:
    limit, status = query.limit, query.status
    async with request.app[db_key]() as session:
        stmt = select(CareDelivery).where(col(CareDelivery.rule_id) == path_id(request, "rule_id"))
        if status:
            stmt = stmt.where(col(CareDelivery.status) == status)
        rows = (await session.exec(stmt.order_by(col(CareDelivery.id).desc()).limit(limit))).all()
    return [r.model_dump(mode="json", exclude={"text"} if not sees_personal(user) else None) for r in rows]


# -- reports ---------------------------------------------------------------------------------------


class NpsQuery(BaseModel):
    start: Day | None = None
    end: Day | None = None
    period: Literal["month", "week"] = "month"


@router.get("/reports/nps", roles=SUPERVISOR, query=NpsQuery)
async def nps_report(request: web.Request, user: User, query: NpsQuery) -> dict[str, Any]:
    """NPS per month (or ?period=week) between ?start= and ?end= (default: the last 12 months)."""
    end = query.end or local_today(utcnow())
    start = query.start or end - timedelta(364)
    since, until = day_bounds(start, end)  # local days, `end` inclusive
    async with request.app[db_key]() as session:
        rows = await nps.nps_report(session, start=since, end=until, period=query.period)
    totals = {k: sum(r[k] for r in rows) for k in ("responses", "promoters", "passives", "detractors")}
    n = totals["responses"]
    overall = round(100 * (totals["promoters"] - totals["detractors"]) / n, 1) if n else None
    return {"periods": rows, "total": {**totals, "nps": overall}}


@router.get("/reports/scrm", roles=SUPERVISOR)
async def scrm_overview(request: web.Request, user: User) -> dict[str, Any]:
    """Customers per lifecycle stage and per value tier."""
    from scrm.lifecycle import stage_counts

    async with request.app[db_key]() as session:
        return {"stages": await stage_counts(session), "tiers": await value.tier_counts(session)}


@router.post("/scrm/recompute", roles=ADMIN)
async def recompute(request: web.Request, user: User) -> dict[str, Any]:
    """Recompute RFM, tiers, member levels and lifecycle stages now."""
    async with transaction(request.app[db_key]) as session:
        result = await value.recompute_all(session)
    return {"customers": result.customers, "stage_changes": result.stage_changes,
            "level_changes": result.level_changes}  # fmt: skip


# -- scheduler jobs ----------------------------------------------------------------------------------


async def _job_lock(session: AsyncSession, name: str) -> bool:
    """One worker at a time for whole-base jobs: a transaction-scoped advisory lock on PostgreSQL."""
    assert session.bind is not None
    if session.bind.dialect.name != "postgresql":
        return True
    key = zlib.crc32(f"huike:{name}".encode())
    return bool((await session.execute(sa.text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key})).scalar())


async def recompute_job(factory: SessionFactory) -> None:
    """Nightly: RFM, tiers, levels, lifecycle, then every tag rule — on its own engine, because on a
    large PostgreSQL base these statements run longer than the app pool's 30 s client timeout."""
    bind = factory.kw.get("bind")
    url = bind.url.render_as_string(hide_password=False) if bind is not None else None
    if url is None or not url.startswith("postgresql"):
        engine = None
    else:
        engine = create_async_engine(url, pool_size=1, max_overflow=0, connect_args={"command_timeout": None})
        factory = make_session_factory(engine)
    try:
        async with transaction(factory) as session:
            if not await _job_lock(session, "scrm-recompute"):
                return
            result = await value.recompute_all(session)
            await tags.run_tag_rules(session)
    finally:
        if engine is not None:
            await engine.dispose()
    log.info("scrm.recomputed", customers=result.customers, stage_changes=result.stage_changes)


async def tag_rules_job(factory: SessionFactory) -> None:
    async with transaction(factory) as session:
        if await _job_lock(session, "scrm-tag-rules"):
            await tags.run_tag_rules(session)


async def care_job(app: web.Application) -> None:
    """Every due care rule for today; several workers may run it at once (the ledger dedups)."""
    factory = app[db_key]
    try:
        results = await care.run_due(factory)
        async with transaction(factory) as session:
            await care.mark_outbox_failures(session)
    except Exception:  # a job failure is logged and retried next tick, never kills the scheduler
        log.exception("scrm.care_job_failed")
        return
    if any(r.outcomes for r in results):
        app[outbox_key].poke()
        log.info("scrm.care_run", results={r.rule: r.outcomes for r in results if r.outcomes})


async def seed_defaults(factory: SessionFactory) -> None:
    """Default tag and care rules from config/scrm.yml, once (idempotent by name)."""
    cfg = scrm_config()
    try:
        async with transaction(factory) as session:
            if (await session.exec(select(TagRule.id).limit(1))).first() is None:
                await tags.seed_tag_rules(session, cfg.tag_rules)
            if (await session.exec(select(CareRule.id).limit(1))).first() is None:
                await care.seed_care_rules(session, cfg.care_rules)
    except IntegrityError:  # another worker seeded at the same moment
        return


def setup(app: web.Application) -> None:
    app[lookup_policy_key] = LookupPolicy()
    router.install(app)
    scheduler = app[scheduler_key]
    scheduler.add_job(care_job, "interval", minutes=CARE_EVERY_MINUTES, kwargs={"app": app}, id="scrm-care")
    scheduler.add_job(_with_factory(app, tag_rules_job), "interval", minutes=TAG_RULES_EVERY_MINUTES,
                      id="scrm-tag-rules")  # fmt: skip
    scheduler.add_job(_with_factory(app, recompute_job), "cron", hour=2, minute=30, id="scrm-recompute")  # fmt: skip
    app.on_startup.append(_seed_at_start)  # after the database is up, before serving; never on a timer


async def _seed_at_start(app: web.Application) -> None:
    await seed_defaults(app[db_key])


def _with_factory(app: web.Application, job: Any) -> Any:
    """The session factory exists only once the app starts (cleanup_ctx); look it up at run time."""

    async def run() -> None:
        try:
            await job(app[db_key])
        except Exception:
            log.exception("scrm.job_failed", job=job.__name__)

    run.__name__ = job.__name__
    return run
