"""Member care: rules evaluated set-wise in SQL, a delivery ledger written before anything is sent.

A run of rule R for local day D:
1. **Claim** — one `INSERT … SELECT … ON CONFLICT DO NOTHING` writes a `pending` ledger row per
   (rule, customer, period) for every customer the rule selects. The unique constraint makes a
   second worker, a restart or a second run of the same job a no-op for rows already claimed.
2. **Send** — pending rows are taken in batches (`FOR UPDATE SKIP LOCKED` on PostgreSQL; an
   atomic `UPDATE … WHERE status = 'pending' RETURNING` on both), the guards decide, and the
   messages are handed to the outbox (the rows `scrm.interactions.record_outbound` writes, inserted
   for the whole batch at once) in the same transaction that sets each row's final status.
   A crash rolls the batch back to `pending`.

Guards: opt-out / consent, weekly frequency cap across rules, quiet hours in the customer's
local time (the send is deferred to the end of the quiet period, never dropped), and WeChat's
48-hour customer-service window (template message when the rule has one, else skipped with reason).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from lunardate import LunarDate
from sqlalchemy.exc import OperationalError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import (
    ChannelIdentity,
    Conversation,
    Customer,
    IdentityStatus,
    OutboxMessage,
    Sender,
    aware,
    utcnow,
)
from models.insight import CustomerInsight
from models.scrm import CareDelivery, CareKind, CareRule, Consent, DeliveryStatus, LifecycleEvent, Segment
from scrm.audit import Actor, record_audit
from scrm.calendar import BusinessCalendar
from scrm.db import dialect_insert, transaction
from scrm.defaults import CareSettings, ScrmConfig, scrm_config
from scrm.errors import Conflict, NotFound, ValidationFailed
from scrm.insight.recommend import recommendations_for
from scrm.interactions import Outbound, record_outbound_many
from scrm.rules import base_filter, compile_rule

if TYPE_CHECKING:
    from jinja2 import Template
    from jinja2.sandbox import SandboxedEnvironment

WINDOW_CHANNELS = {"wechat_oa", "wechat_kf"}  # customer-service messages need a recent customer message
TEMPLATE_CHANNELS = {"wechat_oa"}  # template messages exist on the Official Account
DEFAULT_NAME = "亲爱的顾客"
T = TypeVar("T")


# -- templates ---------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _sandbox() -> SandboxedEnvironment:
    """Made on first use: a worker that renders no care message never loads Jinja2."""
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(autoescape=False, trim_blocks=True)


@lru_cache(maxsize=256)
def _compiled(template: str) -> Template:
    return _sandbox().from_string(template)  # compiling costs milliseconds: once per template, not per customer


def render(template: str, variables: dict[str, Any]) -> str:
    """Render a care template in Jinja2's sandbox (no attribute access to internals, no imports)."""
    from jinja2 import TemplateError

    try:
        return _compiled(template).render(**variables).strip()
    except TemplateError as exc:
        raise ValidationFailed(f"模板错误: {exc}") from None


SAMPLE_VARS = {"recommendations": "保温杯、茶叶礼盒",
               "name": "张三", "level": "金卡会员", "points": 1200, "stage": "成熟", "tier": "高价值",
               "festival": "春节", "date": "2027-02-06", "days": 60}  # fmt: skip


# -- rules: validation and CRUD ----------------------------------------------------------------


def _validate_params(kind: CareKind, params: dict[str, Any]) -> None:
    if kind == CareKind.FESTIVAL:
        names = params.get("festivals")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise ValidationFailed("节日规则需要 festivals 列表，如 [春节, 中秋节]")
        known = set(BusinessCalendar().festivals(2027).values())
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValidationFailed(f"未知节日: {', '.join(unknown)}（可选: {'、'.join(sorted(known))}）")
    if kind == CareKind.INACTIVITY and not (isinstance(params.get("days"), int) and params["days"] > 0):
        raise ValidationFailed("久未互动规则需要正整数 days")
    if kind == CareKind.NPS and params.get("every_months", 3) not in (1, 2, 3, 4, 6, 12):
        raise ValidationFailed("every_months 必须是 1/2/3/4/6/12")
    if kind == CareKind.LIFECYCLE:
        stages = params.get("to_stages", [])
        if not isinstance(stages, list):
            raise ValidationFailed("to_stages 需要列表")


async def save_care_rule(
    session: AsyncSession, *, data: dict[str, Any], actor: Actor, rule_id: int | None = None
) -> CareRule:
    """Create or update a care rule; kind, params, audience and template are validated first."""
    try:
        kind = CareKind(str(data.get("kind")))
    except ValueError:
        raise ValidationFailed(f"未知关怀类型 {data.get('kind')}") from None
    params = dict(data.get("params") or {})
    _validate_params(kind, params)
    template = str(data.get("template") or "").strip()
    if not template:
        raise ValidationFailed("模板不能为空")
    render(template, SAMPLE_VARS)
    conditions = dict(data.get("conditions") or {})
    if conditions:
        await compile_rule(session, conditions)
    segment_id = data.get("segment_id")
    if segment_id is not None and await session.get(Segment, segment_id) is None:
        raise ValidationFailed(f"分群 {segment_id} 不存在")
    wechat_template = data.get("wechat_template")
    if wechat_template is not None and not (
        isinstance(wechat_template, dict) and isinstance(wechat_template.get("template_id"), str)
    ):
        raise ValidationFailed("wechat_template 需要 {template_id, data, url}")
    send_hour = int(data.get("send_hour", 10))
    if not 0 <= send_hour <= 23:
        raise ValidationFailed("send_hour 取值 0-23")
    name = str(data.get("name") or "").strip()
    if not name:
        raise ValidationFailed("规则名称不能为空")
    clash = (await session.exec(select(CareRule).where(col(CareRule.name) == name))).first()
    if clash is not None and clash.id != rule_id:
        raise Conflict(f"关怀规则 {name} 已存在")
    values: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "params": params,
        "segment_id": segment_id,
        "conditions": conditions,
        "channels": list(data.get("channels") or []),
        "template": template,
        "wechat_template": wechat_template,
        "send_hour": send_hour,
        "enabled": bool(data.get("enabled", True)),
    }
    before: dict[str, Any] = {}
    if rule_id is None:
        rule = CareRule(**values)
        session.add(rule)
    else:
        found = await session.get(CareRule, rule_id)
        if found is None:
            raise NotFound(f"关怀规则 {rule_id} 不存在")
        rule = found
        before = rule.model_dump(include=set(values))
        for key, value in values.items():
            setattr(rule, key, value)
        rule.updated_at = utcnow()
    await session.flush()
    record_audit(session, actor=actor, action="care_rule.save", object_type="care_rule", object_id=rule.id,
                 before=before, after=rule.model_dump(include=set(values)))  # fmt: skip
    return rule


async def get_rule(session: AsyncSession, ref: int | str) -> CareRule:
    is_id = isinstance(ref, int) or str(ref).isdigit()
    stmt = select(CareRule).where(col(CareRule.id) == int(ref) if is_id else col(CareRule.name) == str(ref))
    rule = (await session.exec(stmt)).first()
    if rule is None:
        raise NotFound(f"关怀规则 {ref} 不存在")
    return rule


async def seed_care_rules(session: AsyncSession, rules: Sequence[dict[str, Any]]) -> int:
    created = 0
    for spec in rules:
        exists = (await session.exec(select(CareRule).where(col(CareRule.name) == spec["name"]))).first()
        if exists is None:
            await save_care_rule(session, data=spec, actor=Actor.system("seed"))
            created += 1
    return created


# -- time helpers ------------------------------------------------------------------------------


def customer_tz(customer: Customer | None, default: str) -> ZoneInfo:
    name = (customer.attributes or {}).get("timezone") if customer else None
    try:
        return ZoneInfo(str(name or default))
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(default)


def in_quiet_hours(local: time, start: time, end: time) -> bool:
    """Quiet hours [start, end) in local time; start > end means the window crosses midnight."""
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end


def defer_past_quiet_hours(moment: datetime, tz: ZoneInfo, start: time, end: time) -> datetime:
    """`moment` itself, or the end of the quiet period it falls in (in UTC)."""
    local = moment.astimezone(tz)
    if not in_quiet_hours(local.timetz().replace(tzinfo=None), start, end):
        return moment
    end_day = local.date()
    if start > end and local.time() >= start:
        end_day += timedelta(days=1)  # 23:00 -> tomorrow's 08:00
    return datetime.combine(end_day, end, tzinfo=tz).astimezone(UTC)


def birthday_matches(day: date) -> tuple[list[tuple[int, int]], list[tuple[int, int]], str | None]:
    """(solar (month, day) pairs, lunar (month, day) pairs, lunar period) whose birthday is on `day`.

    Leap day: 2/29 birthdays are celebrated on 2/28 in common years. Lunar: a birthday on the 30th
    is celebrated on the 29th when that month is short; nobody's birthday falls in a leap month
    (闰月 birthdays are kept in the regular month, the common custom).
    """
    solar = [(day.month, day.day)]
    if day.month == 2 and day.day == 28 and not _is_leap(day.year):
        solar.append((2, 29))
    lunar_day = LunarDate.fromSolarDate(day.year, day.month, day.day)
    lunar: list[tuple[int, int]] = []
    if not lunar_day.isLeapMonth:
        lunar.append((lunar_day.month, lunar_day.day))
        if lunar_day.day == 29:
            tomorrow = LunarDate.fromSolarDate(*_ymd(day + timedelta(days=1)))
            if tomorrow.day == 1:  # a 29-day month: the 30th's birthdays are today
                lunar.append((lunar_day.month, 30))
    return solar, lunar, f"L{lunar_day.year}"


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _ymd(d: date) -> tuple[int, int, int]:
    return d.year, d.month, d.day


def lunar_to_month_day(year: int, month: int, day: int) -> tuple[int, int]:
    """The lunar (month, day) of a solar date — what a lunar birthday stores."""
    lunar = LunarDate.fromSolarDate(year, month, day)
    return lunar.month, lunar.day


# -- candidate selection (set-wise) ------------------------------------------------------------


@dataclass(slots=True)
class RunContext:
    day: date  # the local day the run is for
    now: datetime  # UTC
    cfg: CareSettings
    tz: ZoneInfo
    calendar: BusinessCalendar
    _festival: str | None = field(default=None, repr=False)

    @property
    def day_start(self) -> datetime:
        return datetime.combine(self.day, time(0), tzinfo=self.tz).astimezone(UTC)

    @property
    def festival(self) -> str:
        """The day's festival name, "" on other days: looked up once per run (the lunar calendar behind
        it is computed per call), not once per customer template."""
        if self._festival is None:
            self._festival = self.calendar.festivals(self.day.year).get(self.day, "")
        return self._festival


def _concat(prefix: str, column: Any) -> Any:
    return sa.literal(prefix, sa.String) + sa.cast(column, sa.String)


async def candidates(session: AsyncSession, rule: CareRule, ctx: RunContext) -> sa.Select[Any] | None:
    """SELECT (customer_id, period) of everyone this rule addresses for `ctx.day`; None = nobody today."""
    where: list[Any] = [base_filter()]
    if rule.segment_id is not None:
        segment = await session.get(Segment, rule.segment_id)
        if segment is None:
            return None
        where.append(await compile_rule(session, segment.conditions, now=ctx.now))
    if rule.conditions:
        where.append(await compile_rule(session, rule.conditions, now=ctx.now))
    since = ctx.day_start - timedelta(days=1)  # event kinds look back over yesterday too (ledger dedups)
    kind = CareKind(rule.kind)
    period: Any
    source: Any = Customer
    if kind == CareKind.BIRTHDAY:
        solar, lunar, lunar_period = birthday_matches(ctx.day)
        solar_match = sa.and_(
            col(Customer.birthday_calendar) == "solar",
            sa.tuple_(col(Customer.birth_month), col(Customer.birth_day)).in_(solar),
        )
        lunar_match = sa.and_(
            col(Customer.birthday_calendar) == "lunar",
            sa.tuple_(col(Customer.birth_month), col(Customer.birth_day)).in_(lunar or [(0, 0)]),
        )
        where.append(sa.or_(solar_match, lunar_match))
        period = sa.case(
            (col(Customer.birthday_calendar) == "lunar", sa.literal(lunar_period)),
            else_=sa.literal(str(ctx.day.year)),
        )
    elif kind == CareKind.FESTIVAL:
        festival = ctx.calendar.festivals(ctx.day.year).get(ctx.day)
        if festival is None or festival not in rule.params.get("festivals", []):
            return None
        period = sa.literal(f"{festival}-{ctx.day.year}")
    elif kind == CareKind.INACTIVITY:
        days = int(rule.params.get("days", 60))
        edge = ctx.now - timedelta(days=days)
        where += [col(Customer.last_active_at) < edge, col(Customer.last_active_at) >= edge - timedelta(days=1)]
        period = sa.literal(f"idle{days}-{(ctx.day - timedelta(days=days)).isoformat()}")
    elif kind == CareKind.WINBACK:
        risks = rule.params.get("churn_risk") or ["高"]
        where.append(sa.exists().where(col(CustomerInsight.customer_id) == Customer.id,
                                       col(CustomerInsight.churn_risk).in_(risks)))  # fmt: skip
        period = sa.literal(f"winback-{ctx.day.year}-q{(ctx.day.month - 1) // 3 + 1}")  # once a quarter at most
    elif kind == CareKind.NPS:
        every = int(rule.params.get("every_months", 3))
        active = ctx.now - timedelta(days=int(rule.params.get("active_days", 90)))
        where.append(col(Customer.last_active_at) >= active)
        period = sa.literal(f"nps-{ctx.day.year}-{(ctx.day.month - 1) // every}")
    elif kind == CareKind.WELCOME:
        after = timedelta(hours=int(rule.params.get("after_hours", 24)))
        first_seen = (
            sa.select(col(ChannelIdentity.customer_id), sa.func.min(ChannelIdentity.created_at).label("at"))
            .group_by(col(ChannelIdentity.customer_id))
            .subquery()
        )
        source = sa.join(Customer, first_seen, first_seen.c.customer_id == Customer.id)
        where += [first_seen.c.at <= ctx.now - after, first_seen.c.at > ctx.now - after - timedelta(days=2)]
        period = sa.literal("welcome")
    elif kind in (CareKind.LIFECYCLE, CareKind.LEVEL_UP):
        event_kind = "stage" if kind == CareKind.LIFECYCLE else "level"
        source = sa.join(Customer, LifecycleEvent, col(LifecycleEvent.customer_id) == Customer.id)
        where += [col(LifecycleEvent.kind) == event_kind, col(LifecycleEvent.created_at) >= since,
                  col(LifecycleEvent.created_at) <= ctx.now]  # fmt: skip
        stages = rule.params.get("to_stages") or []
        if stages:
            where.append(col(LifecycleEvent.to_value).in_(stages))
        period = _concat(f"{event_kind}-", LifecycleEvent.id)
    elif kind == CareKind.TICKET_SURVEY:
        from models.ticket import Ticket

        source = sa.join(Customer, Ticket, col(Ticket.customer_id) == Customer.id)
        where += [col(Ticket.status).in_(["resolved", "closed"]), col(Ticket.updated_at) >= since]
        period = _concat("ticket-", Ticket.id)
    else:  # pragma: no cover - CareKind is closed
        return None
    return sa.select(col(Customer.id).label("customer_id"), period.label("period")).select_from(source).where(*where)


async def claim(session: AsyncSession, rule: CareRule, ctx: RunContext) -> int:
    """Write the pending ledger rows for this run; rows that exist already are left alone."""
    stmt = await candidates(session, rule, ctx)
    if stmt is None:
        return 0
    rows = stmt.subquery()
    source = (
        sa.select(
            sa.literal(rule.id, sa.Integer),
            rows.c.customer_id,
            rows.c.period,
            sa.literal(DeliveryStatus.PENDING.value, sa.String),
            sa.literal("", sa.Text),
            sa.literal(ctx.now, sa.DateTime(timezone=True)),
        )
        .distinct()
        .where(sa.literal_column("1") == 1)
    )  # SQLite needs a WHERE before ON CONFLICT
    insert = (
        dialect_insert(session)(CareDelivery)
        .from_select(["rule_id", "customer_id", "period", "status", "text", "created_at"], source)
        .on_conflict_do_nothing(index_elements=["rule_id", "customer_id", "period"])
    )
    result = await session.execute(insert)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# -- sending -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Decision:
    status: DeliveryStatus
    reason: str | None = None
    channel: str | None = None
    via: str | None = None
    send_at: datetime | None = None
    text: str = ""
    identity: ChannelIdentity | None = None


@dataclass(slots=True)
class Audience:
    """What the guards need for a batch of customers, loaded with four queries."""

    customers: dict[int, Customer]
    identities: dict[int, list[ChannelIdentity]]
    opted_out: dict[int, set[str]]  # customer -> channels opted out of ("*" = all)
    sent_this_week: dict[int, int]
    recommendations: dict[int, list[str]] = field(default_factory=dict)  # only when a template asks for them


async def load_audience(
    session: AsyncSession, customer_ids: list[int], now: datetime, rule: CareRule | None = None
) -> Audience:
    customers = {
        c.id: c for c in (await session.exec(select(Customer).where(col(Customer.id).in_(customer_ids)))).all()
    }
    identities: dict[int, list[ChannelIdentity]] = {}
    stmt = (
        select(ChannelIdentity)
        .where(col(ChannelIdentity.customer_id).in_(customer_ids), col(ChannelIdentity.status) == IdentityStatus.ACTIVE)
        .order_by(col(ChannelIdentity.last_inbound_at).desc().nulls_last(), col(ChannelIdentity.id).desc())
    )
    for identity in (await session.exec(stmt)).all():
        identities.setdefault(identity.customer_id, []).append(identity)
    opted_out: dict[int, set[str]] = {}
    consent_stmt = select(Consent.customer_id, Consent.channel).where(
        col(Consent.customer_id).in_(customer_ids), col(Consent.granted).is_(False),
        col(Consent.purpose).in_(["care", "*"]),
    )  # fmt: skip
    for customer_id, channel in (await session.exec(consent_stmt)).all():
        opted_out.setdefault(customer_id, set()).add(channel)
    week_stmt = (
        sa.select(col(CareDelivery.customer_id), sa.func.count())
        .where(col(CareDelivery.customer_id).in_(customer_ids), col(CareDelivery.status) == DeliveryStatus.SENT,
               col(CareDelivery.sent_at) >= now - timedelta(days=7))
        .group_by(col(CareDelivery.customer_id))
    )  # fmt: skip
    sent = {cid: int(n) for cid, n in (await session.execute(week_stmt)).all()}
    wanted = rule is not None and "recommendations" in rule.template
    recommended = await recommendations_for(session, customer_ids) if wanted else {}
    return Audience(customers={k: v for k, v in customers.items() if k is not None}, identities=identities,
                    opted_out=opted_out, sent_this_week=sent, recommendations=recommended)  # fmt: skip


def variables(customer: Customer, rule: CareRule, ctx: RunContext, recommended: Sequence[str] = ()) -> dict[str, Any]:
    return {
        "recommendations": "、".join(recommended),
        "name": customer.name or DEFAULT_NAME,
        "level": customer.member_level or "会员",
        "points": customer.points,
        "stage": customer.lifecycle_stage,
        "festival": ctx.festival,
        "date": ctx.day.isoformat(),
        "days": rule.params.get("days", ""),
    }


def decide(rule: CareRule, customer: Customer | None, audience: Audience, ctx: RunContext) -> Decision:
    """Apply the guards to one ledger row (pure: no I/O)."""
    if customer is None or customer.erased_at is not None or customer.merged_into_id is not None:
        return Decision(DeliveryStatus.SKIPPED, "customer_gone")
    assert customer.id is not None
    opted = audience.opted_out.get(customer.id, set())
    if "*" in opted:
        return Decision(DeliveryStatus.OPTED_OUT, "opt_out")
    identities = [i for i in audience.identities.get(customer.id, []) if i.channel not in opted]
    if rule.channels:
        ranked = sorted(
            (i for i in identities if i.channel in rule.channels), key=lambda i: rule.channels.index(i.channel)
        )
        identities = ranked
    if not identities:
        reason = "opt_out" if audience.identities.get(customer.id) and opted else "no_channel"
        status = DeliveryStatus.OPTED_OUT if reason == "opt_out" else DeliveryStatus.SKIPPED
        return Decision(status, reason)
    if audience.sent_this_week.get(customer.id, 0) >= ctx.cfg.weekly_cap:
        return Decision(DeliveryStatus.SKIPPED, "frequency_cap")
    identity = identities[0]
    tz = customer_tz(customer, str(ctx.tz))
    quiet = ctx.cfg.quiet_hours
    send_at = defer_past_quiet_hours(ctx.now, tz, quiet.start, quiet.end)
    text = render(rule.template, variables(customer, rule, ctx, audience.recommendations.get(customer.id, ())))
    via = "service"
    if identity.channel in WINDOW_CHANNELS:
        window = timedelta(hours=ctx.cfg.wechat_window_hours)
        last = identity.last_inbound_at
        if last is None or send_at - aware(last) >= window:
            if rule.wechat_template and identity.channel in TEMPLATE_CHANNELS:
                via = "template"
            else:
                return Decision(DeliveryStatus.SKIPPED, "outside_48h_window", channel=identity.channel)
    return Decision(DeliveryStatus.SENT, None, identity.channel, via, send_at, text, identity)


def _template_payload(rule: CareRule, text: str, variables_: dict[str, Any]) -> dict[str, Any]:
    spec = dict(rule.wechat_template or {})
    data = {
        key: {"value": render(str(value), variables_) if isinstance(value, str) else value}
        for key, value in (spec.get("data") or {"first": text}).items()
    }
    return {"text": text, "template": {"template_id": spec["template_id"], "data": data, "url": spec.get("url")}}


async def _conversations(
    session: AsyncSession, wanted: list[tuple[int, ChannelIdentity]], now: datetime
) -> dict[tuple[int, str, str, str], Conversation]:
    """The open conversation per (customer, channel identity), created when missing — in two queries."""
    keys = {(cid, i.channel, i.app_id, i.external_id) for cid, i in wanted}
    found: dict[tuple[int, str, str, str], Conversation] = {}
    stmt = (
        select(Conversation)
        .where(col(Conversation.customer_id).in_({k[0] for k in keys}), col(Conversation.state) != "closed")
        .order_by(col(Conversation.id).desc())
    )
    for conv in (await session.exec(stmt)).all():
        key = (conv.customer_id, conv.channel, conv.app_id, conv.external_id)
        if key in keys:
            found.setdefault(key, conv)
    missing = [Conversation(customer_id=k[0], channel=k[1], app_id=k[2], external_id=k[3], created_at=now)
               for k in keys if k not in found]  # fmt: skip
    if missing:
        session.add_all(missing)
        await session.flush()
        found.update({(c.customer_id, c.channel, c.app_id, c.external_id): c for c in missing})
    return found


@dataclass(slots=True)
class RunResult:
    rule: str
    period_day: str
    claimed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def count(self, key: str) -> None:
        self.outcomes[key] = self.outcomes.get(key, 0) + 1


async def send_pending(session: AsyncSession, rule: CareRule, ctx: RunContext, *, batch: int = 500) -> RunResult:
    """Take one batch of this rule's pending rows, decide and hand each to the outbox (caller commits)."""
    result = RunResult(rule=rule.name, period_day=ctx.day.isoformat())
    pick = (
        sa.select(col(CareDelivery.id))
        .where(col(CareDelivery.rule_id) == rule.id, col(CareDelivery.status) == DeliveryStatus.PENDING)
        .order_by(col(CareDelivery.id))
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    ids = list((await session.execute(pick)).scalars())
    if not ids:
        return result
    claimed = await session.execute(
        sa.update(CareDelivery)
        .where(col(CareDelivery.id).in_(ids), col(CareDelivery.status) == DeliveryStatus.PENDING)
        .values(status="processing")
        .returning(col(CareDelivery.id))
        .execution_options(synchronize_session=False)
    )
    mine = list(claimed.scalars())
    if not mine:
        return result
    rows = (await session.exec(select(CareDelivery).where(col(CareDelivery.id).in_(mine)))).all()
    audience = await load_audience(session, sorted({r.customer_id for r in rows}), ctx.now, rule)
    sending: list[tuple[CareDelivery, Customer, Decision]] = []
    for row in rows:
        customer = audience.customers.get(row.customer_id)
        decision = decide(rule, customer, audience, ctx)
        row.status, row.reason, row.channel, row.via = decision.status, decision.reason, decision.channel, decision.via
        if decision.status == DeliveryStatus.SENT and customer is not None:
            row.text, row.sent_at = decision.text, decision.send_at
            sending.append((row, customer, decision))
            audience.sent_this_week[row.customer_id] = audience.sent_this_week.get(row.customer_id, 0) + 1
        session.add(row)
        result.count(decision.status.value if decision.reason is None else decision.reason)
    if sending:
        conversations = await _conversations(
            session, [(c.id or 0, d.identity) for _, c, d in sending if d.identity is not None], ctx.now
        )
        items = []
        for row, customer, decision in sending:
            identity = decision.identity
            assert identity is not None
            payload: dict[str, Any] = {"text": decision.text, "care": {"rule_id": rule.id, "delivery_id": row.id}}
            if decision.via == "template":
                recommended = audience.recommendations.get(row.customer_id, ())
                payload |= _template_payload(rule, decision.text, variables(customer, rule, ctx, recommended))
            key = (row.customer_id, identity.channel, identity.app_id, identity.external_id)
            items.append(
                Outbound(conversations[key], decision.text, payload, sender=Sender.SYSTEM, kind="care",
                         next_attempt_at=decision.send_at)
            )  # fmt: skip
        for (row, _, _), (message, outbox) in zip(sending, await record_outbound_many(session, items), strict=True):
            row.message_id, row.outbox_id = message.id, outbox.id
    await session.flush()
    return result


def make_context(day: date | None = None, now: datetime | None = None, *, config: ScrmConfig | None = None,
                 calendar: BusinessCalendar | None = None) -> RunContext:  # fmt: skip
    cfg = config or scrm_config()
    tz = ZoneInfo(cfg.timezone)
    if now is None:
        now = utcnow()
        if day is not None and now.astimezone(tz).date() != day:
            # an on-demand run for another day (`huike care run --date`): act as at 10:00 that day
            now = datetime.combine(day, time(10), tzinfo=tz).astimezone(UTC)
    return RunContext(day=day or now.astimezone(tz).date(), now=now, cfg=cfg.care, tz=tz,
                      calendar=calendar or BusinessCalendar(tz=tz))  # fmt: skip


async def _in_transaction(factory: Any, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in its own write transaction; on SQLite a writer that lost a cross-process lock
    race is retried. Every step of a run is idempotent (claims are ON CONFLICT DO NOTHING, a send
    batch rolls back whole), so a retry can never send twice.
    """
    for attempt in range(40):
        try:
            async with transaction(factory) as session:
                return await work(session)
        except OperationalError as exc:
            if "locked" not in str(exc) or attempt == 39:
                raise
            await asyncio.sleep(0.02 * (attempt + 1))
    raise AssertionError("unreachable")


async def run_rule(
    factory: Any, rule_ref: int | str, *, day: date | None = None, now: datetime | None = None,
    config: ScrmConfig | None = None, calendar: BusinessCalendar | None = None, batch: int = 500,
) -> RunResult:  # fmt: skip
    """Claim then send, each batch in its own transaction. `factory` is an async session factory."""
    ctx = make_context(day, now, config=config, calendar=calendar)

    async def claim_step(session: AsyncSession) -> tuple[CareRule, int]:
        rule = await get_rule(session, rule_ref)
        claimed = await claim(session, rule, ctx)
        rule.last_run_at = ctx.now
        return rule, claimed

    rule, claimed = await _in_transaction(factory, claim_step)
    total = RunResult(rule=rule.name, period_day=ctx.day.isoformat(), claimed=claimed)
    while True:
        part = await _in_transaction(factory, lambda session: send_pending(session, rule, ctx, batch=batch))
        if not part.outcomes:
            return total
        for key, n in part.outcomes.items():
            total.outcomes[key] = total.outcomes.get(key, 0) + n


async def due_rules(session: AsyncSession, ctx: RunContext) -> list[CareRule]:
    """Enabled rules whose send hour has come today (welcome and event kinds run every hour)."""
    hour = ctx.now.astimezone(ctx.tz).hour
    rules = (await session.exec(select(CareRule).where(col(CareRule.enabled)).order_by(col(CareRule.id)))).all()
    return [r for r in rules if r.send_hour <= hour]


async def run_due(factory: Any, *, now: datetime | None = None, config: ScrmConfig | None = None,
                  calendar: BusinessCalendar | None = None) -> list[RunResult]:  # fmt: skip
    """The scheduler job: every due rule for today. Safe to run on several workers at once."""
    ctx = make_context(None, now, config=config, calendar=calendar)
    async with factory() as session:
        rules = await due_rules(session, ctx)
    return [await run_rule(factory, r.id or 0, now=ctx.now, config=config, calendar=ctx.calendar) for r in rules]


# -- preview and reporting ---------------------------------------------------------------------


@dataclass(slots=True)
class PreviewRow:
    customer_id: int
    period: str
    outcome: str
    channel: str | None
    via: str | None
    send_at: datetime | None
    text: str


async def preview(
    session: AsyncSession, rule: CareRule, *, day: date | None = None, now: datetime | None = None,
    limit: int = 20, config: ScrmConfig | None = None, calendar: BusinessCalendar | None = None,
) -> tuple[int, list[PreviewRow]]:  # fmt: skip
    """Who would get what for `day`, without writing anything: (total not yet in the ledger, first rows)."""
    ctx = make_context(day, now, config=config, calendar=calendar)
    stmt = await candidates(session, rule, ctx)
    if stmt is None:
        return 0, []
    sub = stmt.subquery()
    fresh = sa.select(sub.c.customer_id, sub.c.period).distinct().where(
        ~sa.exists().where(col(CareDelivery.rule_id) == rule.id, col(CareDelivery.customer_id) == sub.c.customer_id,
                           col(CareDelivery.period) == sub.c.period)
    )  # fmt: skip
    total = int((await session.execute(sa.select(sa.func.count()).select_from(fresh.subquery()))).scalar_one())
    rows = (await session.execute(fresh.order_by(sub.c.customer_id).limit(limit))).all()
    audience = await load_audience(session, [r.customer_id for r in rows], ctx.now, rule)
    out = []
    for customer_id, period in rows:
        decision = decide(rule, audience.customers.get(customer_id), audience, ctx)
        out.append(PreviewRow(customer_id, period, decision.reason or decision.status.value, decision.channel,
                              decision.via, decision.send_at, decision.text))  # fmt: skip
    return total, out


async def rule_stats(session: AsyncSession, rule_id: int) -> dict[str, int]:
    """Ledger results per rule: sent, skipped (by reason), opted out, replied, failed."""
    stmt = (
        sa.select(col(CareDelivery.status), col(CareDelivery.reason), sa.func.count())
        .where(col(CareDelivery.rule_id) == rule_id)
        .group_by(col(CareDelivery.status), col(CareDelivery.reason))
    )
    stats: dict[str, int] = {}
    for status, reason, n in (await session.execute(stmt)).all():
        key = f"{status}:{reason}" if reason else str(status)
        stats[key] = stats.get(key, 0) + int(n)
    return stats


async def mark_replied(session: AsyncSession, *, customer_ids: Collection[int], now: datetime | None = None) -> int:
    """These customers wrote back within 48 h of a care message: those deliveries count as replied."""
    now = now or utcnow()
    result = await session.execute(
        sa.update(CareDelivery)
        .where(col(CareDelivery.customer_id).in_(sorted(set(customer_ids))),
               col(CareDelivery.status) == DeliveryStatus.SENT,
               col(CareDelivery.sent_at) >= now - timedelta(hours=48), col(CareDelivery.sent_at) <= now)
        .values(status=DeliveryStatus.REPLIED)
        .execution_options(synchronize_session=False)
    )  # fmt: skip
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def mark_outbox_failures(session: AsyncSession) -> int:
    """Deliveries whose outbox row finally failed become `failed` with the outbox's reason."""
    from models import OutboxStatus

    failed = (
        await session.execute(
            sa.select(col(CareDelivery.id), col(OutboxMessage.last_error))
            .join(OutboxMessage, col(OutboxMessage.id) == CareDelivery.outbox_id)
            .where(col(CareDelivery.status) == DeliveryStatus.SENT, col(OutboxMessage.status) == OutboxStatus.FAILED)
        )
    ).all()
    for delivery_id, error in failed:
        await session.execute(
            sa.update(CareDelivery).where(col(CareDelivery.id) == delivery_id)
            .values(status=DeliveryStatus.FAILED, reason=(error or "delivery_failed")[:64])
        )  # fmt: skip
    return len(failed)


# -- consent -----------------------------------------------------------------------------------

OPT_OUT_WORDS = re.compile(r"^\s*(退订|取消订阅|TD|td|T\s*D|不要再发|拒收)\s*[。.!！]?\s*$")


async def set_consent(
    session: AsyncSession, *, customer_id: int, granted: bool, actor: Actor, channel: str = "*",
    purpose: str = "care", source: str = "customer",
) -> Consent:  # fmt: skip
    """Record consent or opt-out for (channel, purpose); audited."""
    row = (
        await session.exec(
            select(Consent).where(col(Consent.customer_id) == customer_id, col(Consent.channel) == channel,
                                  col(Consent.purpose) == purpose)
        )
    ).first()  # fmt: skip
    before = {"granted": row.granted} if row else {}
    if row is None:
        row = Consent(customer_id=customer_id, channel=channel, purpose=purpose)
    row.granted, row.source, row.updated_at = granted, source, utcnow()
    session.add(row)
    await session.flush()
    record_audit(session, actor=actor, action="customer.consent", object_type="customer", object_id=customer_id,
                 before=before, after={"channel": channel, "purpose": purpose, "granted": granted})  # fmt: skip
    return row
