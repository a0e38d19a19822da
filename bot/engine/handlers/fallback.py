"""When nothing else applies: apologise, and offer 转人工 when it keeps happening."""

from __future__ import annotations

from bot.engine import texts
from bot.engine.turn import Turn
from bot.messages import Choice, Kind, OutboundMessage

REPEATED_FALLBACKS = 2
GAP = {"gap": "fallback"}  # the content-gap page groups the messages the bot could not answer


class NonTextHandler:
    """Images, voice without recognition, locations …: acknowledge kindly."""

    name = "non_text"

    async def applies(self, turn: Turn) -> bool:
        return turn.inbound.kind != Kind.TEXT and not turn.text

    async def handle(self, turn: Turn) -> list[OutboundMessage]:
        return [OutboundMessage(text=texts.NON_TEXT)]


class FallbackHandler:
    name = "fallback"

    async def applies(self, turn: Turn) -> bool:
        return True

    async def handle(self, turn: Turn) -> list[OutboundMessage]:
        conversation = turn.conversation
        conversation.fallback_count += 1
        turn.set_flow(None)
        if conversation.fallback_count >= REPEATED_FALLBACKS:
            return [
                OutboundMessage(
                    text=texts.FALLBACK_REPEATED,
                    choices=(Choice(title=texts.OFFER_HUMAN_CHOICE, payload="human"),),
                    meta=dict(GAP),
                )
            ]
        return [OutboundMessage(text=texts.FALLBACK, meta=dict(GAP))]
