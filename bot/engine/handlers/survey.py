"""The customer's satisfaction answer to a resolved ticket, on any channel.

Applies only when the customer has a resolved ticket whose question is unanswered and the message
reads as an answer (1–5, "五分", "非常满意", "没解决" …). 4–5 closes the ticket, 1–3 or "没解决"
reopens and escalates it; the customer is told which by the ticket verbs (exactly once).
"""

from __future__ import annotations

from bot.engine.handlers.complaint import forward_events, ticket_policy
from bot.engine.turn import Turn
from bot.messages import OutboundMessage
from scrm import surveys, tickets


class SurveyHandler:
    name = "survey"

    async def applies(self, turn: Turn) -> bool:
        if not turn.text or turn.conversation.flow not in (None, "") or turn.customer.id is None:
            return False
        policy = ticket_policy(turn)
        if surveys.read_csat(turn.text, policy.config.survey.reopen_words) is None:
            return False
        return await tickets.awaiting_survey(turn.session, customer_id=turn.customer.id) is not None

    async def handle(self, turn: Turn) -> list[OutboundMessage]:
        policy = ticket_policy(turn)
        answer = surveys.read_csat(turn.text, policy.config.survey.reopen_words)
        assert answer is not None and turn.customer.id is not None
        ticket = await tickets.awaiting_survey(turn.session, customer_id=turn.customer.id)
        if ticket is None:
            return []
        await surveys.record_csat(
            turn.session,
            policy=policy,
            ticket=ticket,
            answer=answer,
            channel=str(turn.conversation.channel),
            conversation_id=turn.conversation.id,
        )
        forward_events(turn)
        return []  # the closed / reopened notice was recorded by the verb
