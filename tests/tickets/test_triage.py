"""Triage rules from config/tickets.yml: category with confidence, severity with reasons."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from models.ticket import Severity
from scrm.ticket_config import TicketConfig, load_ticket_config
from scrm.triage import Signals, assess_severity, categorize

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Reading:
    """An NLU result as triage reads it (nlu.types.ParseResult has these fields)."""

    intent: str = "nlu_fallback"
    confidence: float = 0.0
    anger: float = 0.0
    extras: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module")
def config() -> TicketConfig:
    return load_ticket_config()


@pytest.mark.parametrize(
    ("text", "category", "source"),
    [
        ("快递三天了还没收到，物流也不更新", "物流配送", "keyword"),
        ("买的衣服质量太差，洗一次就掉色开线", "商品质量", "keyword"),
        ("App 一打开就闪退，页面白屏", "App/技术故障", "keyword"),
        ("我的个人信息被泄露了，天天接到骚扰电话", "隐私/安全", "keyword"),
        ("我要投诉，太让人失望了", "待分类", "default"),
        ("快递坏了", "待分类", "keyword"),  # one word each for two categories: too unsure
    ],
)
def test_category_from_keywords(config: TicketConfig, text: str, category: str, source: str) -> None:
    guess = categorize(text, None, config)
    assert (guess.category, guess.source) == (category, source)
    assert (guess.category == "待分类") == (guess.confidence < config.taxonomy.min_confidence)


def test_category_from_the_nlu_when_it_is_surer(config: TicketConfig) -> None:
    assert categorize("钱什么时候退给我", Reading("refund", 0.9), config).category == "退换货/退款"
    assert categorize("钱什么时候退给我", Reading("refund", 0.9), config).source == "nlu"
    told = Reading(extras={"complaint_category": "服务态度", "complaint_category_confidence": 0.8})
    assert categorize("那个人说话太冲了", told, config).category == "服务态度"
    unsure = Reading(extras={"complaint_category": "服务态度", "complaint_category_confidence": 0.2})
    assert categorize("那个人说话太冲了", unsure, config).category == "待分类"


def test_severity_takes_the_most_severe_rule_and_keeps_every_reason(config: TicketConfig) -> None:
    verdict = assess_severity(
        Signals(text="孩子用了过敏住院了，我要找媒体曝光", anger=0.9, member_level="钻石", now=NOW), config
    )
    assert verdict.severity == Severity.P1
    names = ["安全/健康", "媒体/监管/法律", "情绪激烈", "高价值客户", "情绪不满"]
    assert all(name in verdict.reason for name in names)
    assert verdict.reason.index("P1") < verdict.reason.index("P2") < verdict.reason.index("P3")


def test_severity_defaults_and_mild_cases(config: TicketConfig) -> None:
    assert assess_severity(Signals(text="快递慢", anger=0.3, now=NOW), config).severity == Severity.P3
    mild = assess_severity(Signals(text="优惠券用不了", anger=0.1, category="价格/优惠", now=NOW), config)
    assert mild.severity == Severity.P4 and "轻微" in mild.reason
    old = Signals(text="快递慢", previous_ticket_times=[NOW - timedelta(days=45)], now=NOW)
    assert "重复投诉" not in assess_severity(old, config).reason
    recent = Signals(text="快递慢", previous_ticket_times=[NOW - timedelta(days=3)], now=NOW)
    assert assess_severity(recent, config).severity == Severity.P2
    big = Signals(text="快递慢", order_amount=Decimal("1999.99"), now=NOW)
    assert "订单金额" not in assess_severity(big, config).reason
