"""The conversation engine: one turn = inbound message -> decision -> recorded replies.

Pure asyncio: it knows no HTTP, no XML and no channel; channels hand it an
`InboundMessage` and deliver what it records in the outbox.
"""

from bot.engine.engine import Engine, Reply, TurnResult
from bot.engine.services import Services
from bot.engine.turn import AnswerSlot, Turn

__all__ = ["AnswerSlot", "Engine", "Reply", "Services", "Turn", "TurnResult"]
