"""SCRM side of every turn: incremental tagging, care replies, opt-out (退订) and NPS answers.

`ScrmObserver` sees every stored customer message (also when an agent owns the conversation):
it records the interaction — the NLU intent and the FAQ topic as countable events — and, once the
turn commits, hands the customer to `Followups`, which re-evaluates every tag rule for them and
marks a recent care message as replied. Opt-out / opt-in and NPS answers are decided by the state
table (`bot.engine.states`), with the replies below.
"""

from __future__ import annotations

from bot.engine.turn import Turn
from bot.messages import Kind
from scrm import tags
from scrm.audit import Actor

OPT_OUT_REPLY = "已为您退订关怀消息，之后不再打扰。如需恢复，请回复“订阅”。"
OPT_IN_REPLY = "已为您恢复关怀消息，感谢关注！"
NPS_THANKS = "感谢您的评分！我们会继续努力。"
OPT_IN_WORDS = {"订阅", "恢复订阅"}
CUSTOMER = Actor(id=None, name="customer", role="customer")


class ScrmObserver:
    name = "scrm"

    async def observe(self, turn: Turn) -> None:
        customer_id = turn.customer.id
        if customer_id is None or turn.inbound.kind == Kind.EVENT:
            return
        now = turn.services.clock()
        intent = topic = None
        if turn.inbound.kind == Kind.TEXT and turn.text:
            intent = (await turn.parse()).intent
            if intent.startswith("faq/") and intent[4:].isdigit():
                doc = turn.services.faq.docs.get(int(intent[4:]))
                topic = doc.category if doc and doc.category else None
        events = {kind: name for kind, name in (("intent", intent), ("topic", topic)) if name}
        await tags.record_events(turn.session, customer_id=customer_id, events=events, at=now)
        turn.committed.append(lambda: turn.services.followups.note(customer_id))
