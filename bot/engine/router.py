"""A router of small handlers: the first one that applies answers the turn."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bot.engine.turn import Turn
from bot.messages import OutboundMessage


class Handler(Protocol):
    name: str

    async def applies(self, turn: Turn) -> bool: ...

    async def handle(self, turn: Turn) -> list[OutboundMessage]: ...


class Observer(Protocol):
    """Sees every stored customer message (side effects only, e.g. SCRM tagging)."""

    async def observe(self, turn: Turn) -> None: ...


class Router:
    def __init__(self, handlers: Sequence[Handler]) -> None:
        self.handlers = list(handlers)

    async def route(self, turn: Turn) -> tuple[str, list[OutboundMessage]]:
        for handler in self.handlers:
            if await handler.applies(turn):
                return handler.name, await handler.handle(turn)
        return "none", []
