"""What handlers may use besides the database: NLU, settings, the clock, the event bus, deferred SCRM work."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from bot.engine.followups import Followups
from config.settings import Settings
from models import utcnow
from nlu import FaqDoc, FaqHit, ParseResult
from scrm.tickets import TicketPolicy


class Understander(Protocol):
    async def parse(self, text: str) -> ParseResult: ...

    def suggest(self, text: str, k: int = 3) -> list[FaqHit]: ...


class Publisher(Protocol):
    async def publish(self, topic: str, data: dict[str, Any]) -> None: ...


class FaqCatalog:
    """The enabled FAQ entries the bot answers from, by id (reloaded when admins edit them)."""

    def __init__(self, docs: list[FaqDoc] | None = None) -> None:
        self.docs: dict[int, FaqDoc] = {d.id: d for d in docs or []}

    def answer(self, faq_id: int) -> str:
        doc = self.docs.get(faq_id)
        return doc.answer if doc else ""

    def replace(self, docs: list[FaqDoc]) -> None:
        self.docs = {d.id: d for d in docs}


@dataclass
class Services:
    settings: Settings
    nlu: Understander
    bus: Publisher
    faq: FaqCatalog
    followups: Followups  # tagging and care bookkeeping, shortly after the turn
    stored_is_delivered: set[str] = field(default_factory=set)  # channels that pull what is stored (web-chat)
    hold_seconds: dict[str, float] = field(default_factory=dict)  # channels that may answer in the HTTP response
    tickets: TicketPolicy | None = None  # complaint taxonomy, severity rules, SLA (loaded on first use)
    clock: Callable[[], datetime] = field(default=utcnow)
