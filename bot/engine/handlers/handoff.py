"""转人工: put the conversation in the agents' queue; the bot is silent from then on."""

from __future__ import annotations

from bot.engine import texts
from bot.engine.decision import HUMAN_WORDS, wants_human
from bot.engine.turn import Turn
from bot.messages import OutboundMessage
from models import ConversationState


async def queue_for_agent(turn: Turn, reason: str) -> None:
    """Move the conversation into the agents' queue and tell the console."""
    conversation = turn.conversation
    conversation.state = ConversationState.QUEUED
    conversation.queue_reason = reason
    conversation.queued_at = turn.services.clock()
    turn.set_flow(None)
    turn.emit("conversation.queued", {"conversation_id": conversation.id, "reason": reason})


class HandoffHandler:
    name = "handoff"

    async def applies(self, turn: Turn) -> bool:
        if HUMAN_WORDS.search(turn.text):
            return True
        parsed = await turn.parse()
        return wants_human(turn.text, parsed.intent, parsed.confidence)

    async def handle(self, turn: Turn) -> list[OutboundMessage]:
        from bot.engine.queueing import queue_status  # (queueing builds on the complaint handlers)

        await queue_for_agent(turn, "human")
        return [OutboundMessage(text=texts.HANDOFF_QUEUED + await queue_status(turn))]
