"""One turn of a conversation, as the handlers see it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.engine.services import Services
from bot.messages import InboundMessage
from models import Conversation, Customer, Message
from nlu import ParseResult


@dataclass
class Turn:
    inbound: InboundMessage
    message: Message  # the stored inbound row
    customer: Customer
    conversation: Conversation
    session: AsyncSession  # the transaction the replies are recorded in
    services: Services
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    committed: list[Callable[[], None]] = field(default_factory=list)  # run after the transaction commits
    _parsed: ParseResult | None = None  # may be filled before the transaction starts

    @property
    def text(self) -> str:
        return self.inbound.text.strip()

    async def parse(self) -> ParseResult:
        """The NLU's reading of this message, computed once per turn."""
        if self._parsed is None:
            self._parsed = await self.services.nlu.parse(self.text)
        return self._parsed

    def emit(self, topic: str, data: dict[str, Any]) -> None:
        """Publish an event after the turn's transaction commits."""
        self.events.append((topic, data))

    def set_flow(self, flow: str | None, state: dict[str, Any] | None = None) -> None:
        self.conversation.flow = flow
        self.conversation.flow_state = dict(state or {})
