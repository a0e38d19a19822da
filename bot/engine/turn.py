"""One turn of a conversation, as the handlers see it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.engine.services import Services
from bot.messages import InboundMessage
from models import Conversation, Customer, Message, aware
from nlu import ParseResult


class AnswerSlot:
    """A channel's HTTP answer that can carry the replies (WeChat's passive reply) while it waits.

    The engine takes it inside the turn's transaction; the channel closes it when it stops waiting.
    Whichever comes first wins, so every reply goes either in the HTTP answer or through the outbox.
    """

    def __init__(self, joinable: Callable[[dict[str, Any], dict[str, Any]], bool], via: str = "passive") -> None:
        self.joinable = joinable  # may a later reply payload share one answer with the first?
        self.via = via  # recorded as the replies' delivery path
        self.state: Literal["open", "taken", "closed"] = "open"

    def take(self) -> bool:
        if self.state == "open":
            self.state = "taken"
        return self.state == "taken"

    def close(self) -> bool:
        """Stop waiting; False when the engine already took the slot (its commit is moments away)."""
        if self.state == "open":
            self.state = "closed"
        return self.state == "closed"


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
    handled_by: str = ""  # the action or handler that answered (metrics, TurnResult)
    notes: list[Message] = field(default_factory=list)  # internal lines for the agent's thread, published after

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
        """Enter (or leave, with None) a bot flow; `updated_at` says when its question was asked."""
        self.conversation.flow = flow
        self.conversation.flow_state = dict(state or {})
        if flow:
            self.conversation.flow_state.setdefault("updated_at", aware(self.services.clock()).isoformat())
