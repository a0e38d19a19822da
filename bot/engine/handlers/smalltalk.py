"""Greetings, thanks and goodbyes."""

from __future__ import annotations

from bot.engine import texts
from bot.engine.decision import is_smalltalk
from bot.engine.turn import Turn
from bot.messages import OutboundMessage

REPLIES = {"greet": texts.GREETING, "thanks": texts.THANKS, "goodbye": texts.GOODBYE}


class SmalltalkHandler:
    name = "smalltalk"

    async def applies(self, turn: Turn) -> bool:
        return is_smalltalk(await turn.parse())

    async def handle(self, turn: Turn) -> list[OutboundMessage]:
        parsed = await turn.parse()
        return [OutboundMessage(text=REPLIES[parsed.intent])]
