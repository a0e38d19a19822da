"""FAQ answers, and the clarify step ("您是想问：1. … 2. …") with numbered answers."""

from __future__ import annotations

import re

from bot.engine import texts
from bot.engine.decision import offers_faq
from bot.engine.turn import Turn
from bot.messages import Choice, OutboundMessage

CLARIFY_FLOW = "clarify"
NUMBER = re.compile(r"^\s*([1-9])\s*[.、。]?\s*$")


class FaqHandler:
    name = "faq"

    async def applies(self, turn: Turn) -> bool:
        return offers_faq(await turn.parse())

    async def handle(self, turn: Turn) -> list[OutboundMessage]:
        parsed = await turn.parse()
        turn.conversation.fallback_count = 0
        best = parsed.faq[0]
        if parsed.decision == "answer":
            turn.set_flow(None)
            return [self._answer(turn, best.faq_id, best.score)]
        options = parsed.faq[:3]
        turn.set_flow(CLARIFY_FLOW, {"options": [h.faq_id for h in options]})
        return [
            OutboundMessage(
                text=texts.CLARIFY,
                choices=tuple(Choice(title=h.question, payload=f"faq:{h.faq_id}") for h in options),
                footer=texts.CLARIFY_HINT,
                meta={"gap": "clarify"},  # the content-gap page groups these
            )
        ]

    @staticmethod
    def _answer(turn: Turn, faq_id: int, score: float) -> OutboundMessage:
        return OutboundMessage(text=turn.services.faq.answer(faq_id), meta={"faq_id": faq_id, "score": round(score, 3)})


class ClarifyChoiceHandler:
    """The customer answers a clarify question with a number."""

    name = "clarify"

    async def applies(self, turn: Turn) -> bool:
        return turn.conversation.flow == CLARIFY_FLOW and bool(NUMBER.match(turn.text))

    async def handle(self, turn: Turn) -> list[OutboundMessage]:
        match = NUMBER.match(turn.text)
        assert match is not None
        options = list(turn.conversation.flow_state.get("options", []))
        index = int(match.group(1)) - 1
        turn.set_flow(None)
        if index >= len(options):
            return [OutboundMessage(text=texts.FALLBACK)]
        return [FaqHandler._answer(turn, int(options[index]), 1.0)]
