"""Triage: which category a complaint belongs to, and how severe it is (with the reason, for agents).

Category: an NLU intent that names a category, else keyword evidence from the taxonomy; either way a
confidence, and below the threshold the ticket waits in 待分类 for a human.
Severity: explicit rules from config/tickets.yml (anger, member level / value tier, repeats within
N days, media/regulator/legal words, safety words, order amount); every matching rule is kept as a
reason and the most severe one wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Customer, aware
from models.scrm import CustomerValue, Order
from models.ticket import Severity, Ticket
from scrm.ticket_config import SeverityRule, TicketConfig

SEVERITY_ORDER = [Severity.P1, Severity.P2, Severity.P3, Severity.P4]


class ParseLike(Protocol):
    """What triage reads from an NLU result (nlu.types.ParseResult satisfies it)."""

    intent: str
    confidence: float
    anger: float


@dataclass(frozen=True, slots=True)
class CategoryGuess:
    category: str
    confidence: float
    source: str  # nlu | keyword | agent | default
    skill_group: str


@dataclass(frozen=True, slots=True)
class Signals:
    """Facts about one complaint that the severity rules look at."""

    text: str
    anger: float = 0.0
    category: str = ""
    member_level: str | None = None
    value_tier: str | None = None
    previous_ticket_times: Sequence[datetime] = ()
    order_amount: Decimal | None = None
    now: datetime | None = None


@dataclass(frozen=True, slots=True)
class SeverityVerdict:
    severity: Severity
    reasons: list[str] = field(default_factory=list)

    @property
    def reason(self) -> str:
        return "；".join(self.reasons) if self.reasons else "默认级别"


def categorize(text: str, parse: ParseLike | None, config: TicketConfig) -> CategoryGuess:
    taxonomy = config.taxonomy
    best = _keyword_guess(text, config)
    if parse is not None:
        mapped = taxonomy.intent_categories.get(parse.intent)
        if mapped and parse.confidence >= best.confidence:
            best = CategoryGuess(mapped, round(parse.confidence, 3), "nlu", taxonomy.categories[mapped].skill)
        # an NLU that classifies complaints into the taxonomy itself reports it in `extras`
        extras = getattr(parse, "extras", None) or {}
        predicted = extras.get("complaint_category")
        confidence = float(extras.get("complaint_category_confidence") or 0.0)
        if predicted in taxonomy.categories and confidence >= best.confidence:
            best = CategoryGuess(predicted, round(confidence, 3), "nlu", taxonomy.categories[predicted].skill)
    if best.confidence < taxonomy.min_confidence:
        return CategoryGuess(taxonomy.unclassified, best.confidence, best.source, "")
    return best


def _keyword_guess(text: str, config: TicketConfig) -> CategoryGuess:
    lowered = text.lower()
    hits = {
        name: sum(1 for word in cat.keywords if word.lower() in lowered)
        for name, cat in config.taxonomy.categories.items()
    }
    total = sum(hits.values())
    if not total:
        return CategoryGuess(config.taxonomy.unclassified, 0.0, "default", "")
    name, count = max(hits.items(), key=lambda item: item[1])
    # Share of the evidence, discounted when it rests on a single word.
    confidence = count / total * min(1.0, 0.5 + 0.25 * count)
    return CategoryGuess(name, round(confidence, 3), "keyword", config.taxonomy.categories[name].skill)


def skill_for(category: str, config: TicketConfig) -> str:
    cat = config.taxonomy.categories.get(category)
    return cat.skill if cat else ""


def assess_severity(signals: Signals, config: TicketConfig) -> SeverityVerdict:
    matched: list[tuple[Severity, str]] = []
    for rule in config.severity.rules:
        detail = _rule_matches(rule, signals)
        if detail is not None:
            matched.append((rule.severity, f"{rule.severity.value} {rule.name}：{detail}"))
    if not matched:
        return SeverityVerdict(config.severity.default, [])
    top = min((sev for sev, _ in matched), key=SEVERITY_ORDER.index)
    ordered = sorted(matched, key=lambda m: SEVERITY_ORDER.index(m[0]))
    return SeverityVerdict(top, [reason for _, reason in ordered])


def _rule_matches(rule: SeverityRule, s: Signals) -> str | None:
    """A short human-readable account of why the rule matched, or None."""
    details: list[str] = []
    if rule.words:
        found = [w for w in rule.words if w.lower() in s.text.lower()]
        if not found:
            return None
        details.append("提到“" + "、".join(found[:3]) + "”")
    if rule.min_anger is not None:
        if s.anger < rule.min_anger:
            return None
        details.append(f"愤怒度 {s.anger:.2f}≥{rule.min_anger}")
    if rule.max_anger is not None:
        if s.anger > rule.max_anger:
            return None
        details.append(f"愤怒度 {s.anger:.2f}≤{rule.max_anger}")
    if rule.member_levels or rule.value_tiers:
        if s.member_level in rule.member_levels:
            details.append(f"会员等级 {s.member_level}")
        elif s.value_tier in rule.value_tiers:
            details.append(f"客户价值 {s.value_tier}")
        else:
            return None
    if rule.repeat_within_days:
        now = s.now or datetime.max
        since = now - timedelta(days=rule.repeat_within_days)
        repeats = sum(1 for t in s.previous_ticket_times if t >= since)
        if not repeats:
            return None
        details.append(f"{rule.repeat_within_days} 天内已投诉 {repeats} 次")
    if rule.min_order_amount is not None:
        if s.order_amount is None or s.order_amount < Decimal(str(rule.min_order_amount)):
            return None
        details.append(f"订单金额 {s.order_amount}")
    if rule.categories:
        if s.category not in rule.categories:
            return None
        details.append(f"类别 {s.category}")
    return "，".join(details)


async def gather_signals(
    session: AsyncSession,
    *,
    customer_id: int,
    text: str,
    anger: float,
    category: str,
    order_no: str | None,
    now: datetime,
    exclude_ticket_id: int | None = None,
) -> Signals:
    customer = await session.get(Customer, customer_id)
    value = await session.get(CustomerValue, customer_id)
    lookback = now - timedelta(days=366)
    query = select(Ticket.created_at).where(Ticket.customer_id == customer_id, Ticket.created_at >= lookback)
    if exclude_ticket_id is not None:
        query = query.where(Ticket.id != exclude_ticket_id)
    previous = list((await session.exec(query)).all())
    amount: Decimal | None = None
    if order_no:
        amount = (await session.exec(select(func.max(col(Order.amount))).where(Order.order_no == order_no))).first()
    return Signals(
        text=text,
        anger=anger,
        category=category,
        member_level=getattr(customer, "member_level", None),
        value_tier=value.tier if value else None,
        previous_ticket_times=[aware(t) for t in previous],
        order_amount=amount,
        now=now,
    )


def parse_anger(parse: Any | None) -> float:
    return float(getattr(parse, "anger", 0.0) or 0.0) if parse is not None else 0.0
