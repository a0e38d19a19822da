"""Plain data in and out of the NLU layer (no ORM, no web types)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class FaqDoc:
    """One FAQ entry as the NLU sees it: an id, the ways customers ask it, the answer."""

    id: int
    question: str
    similar: tuple[str, ...] = ()
    answer: str = ""
    category: str = ""


@dataclass(frozen=True, slots=True)
class FaqHit:
    faq_id: int
    question: str
    score: float  # 0..1, comparable to the thresholds of `Decision`


@dataclass(frozen=True, slots=True)
class Entity:
    entity: str  # order_id, phone, amount, date, product …
    value: Any
    start: int
    end: int
    text: str


@dataclass(frozen=True, slots=True)
class ParseResult:
    """What the NLU made of one message."""

    text: str
    intent: str  # e.g. "greet", "human", "complaint", "faq/12", "nlu_fallback"
    confidence: float
    ranking: tuple[tuple[str, float], ...] = ()
    faq: tuple[FaqHit, ...] = ()  # best first
    decision: str = "fallback"  # "answer" | "clarify" | "fallback" for the FAQ
    entities: tuple[Entity, ...] = ()
    sentiment: float = 0.5  # probability the text is positive
    anger: float = 0.0  # 0..1 anger/urgency for complaint triage
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def best_faq(self) -> FaqHit | None:
        return self.faq[0] if self.faq else None
