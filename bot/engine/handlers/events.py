"""Channel events (subscribe, click …): welcome new followers, otherwise stay quiet."""

from __future__ import annotations

from bot.engine import texts
from bot.engine.turn import Turn
from bot.messages import Kind, OutboundMessage
from scrm import care
from scrm.audit import Actor

WELCOME_EVENTS = {"subscribe", "add_external_contact", "enter_session"}


class EventsHandler:
    name = "events"

    async def applies(self, turn: Turn) -> bool:
        return turn.inbound.kind == Kind.EVENT

    async def handle(self, turn: Turn) -> list[OutboundMessage]:
        event = (turn.inbound.event or "").lower()
        if event in WELCOME_EVENTS:
            turn.emit("customer.followed", {"customer_id": turn.customer.id, "channel": turn.inbound.channel})
            return [OutboundMessage(text=texts.WELCOME)]
        if event == "unsubscribe" and turn.customer.id is not None:
            # Unfollowing opts out of care messages on that channel (PIPL: no messages they did not ask for).
            await care.set_consent(
                turn.session, customer_id=turn.customer.id, granted=False, channel=turn.inbound.channel,
                actor=Actor(id=None, name="customer", role="customer"), source="unsubscribe",
            )
            turn.emit("customer.unfollowed", {"customer_id": turn.customer.id, "channel": turn.inbound.channel})
        return []
