"""Greetings, thanks and goodbyes."""

from __future__ import annotations

from bot.engine import texts
from bot.engine.turn import Turn
from bot.messages import OutboundMessage

REPLIES = {"greet": texts.GREETING, "thanks": texts.THANKS, "goodbye": texts.GOODBYE}


class SmalltalkHandler:
    name = "smalltalk"

    async def applies(self, turn: Turn) -> bool:
        parsed = await turn.parse()
        return parsed.intent in REPLIES and parsed.confidence >= 0.5

    async def handle(self, turn: Turn) -> list[OutboundMessage]:
        parsed = await turn.parse()
        return [OutboundMessage(text=REPLIES[parsed.intent])]
