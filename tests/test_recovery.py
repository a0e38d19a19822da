"""Messages stored but never answered (a crash between receive and reply) are answered by the
recovery job: every one exactly once, each conversation's in the order they arrived."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import col, select

from bot.keys import db_key, engine_key
from bot.messages import Channel, InboundMessage, Kind
from models.conversation import InboundState, Message, Sender

QUESTIONS = ("多久发货", "运费怎么算", "怎么退货")


async def test_recovery_answers_every_conversation_in_arrival_order(client: Any) -> None:
    app = client.server.app
    engine = app[engine_key]
    stored: dict[int, list[int]] = {}  # conversation -> its messages, in arrival order
    for visitor in range(12):  # more conversations than the job answers at once
        for n, text in enumerate(QUESTIONS):
            visitor_id, msg_id = f"visitor-{visitor}", f"m-{visitor}-{n}"
            inbound = InboundMessage(Channel.WEBCHAT, "default", visitor_id, msg_id, Kind.TEXT, text)
            message, duplicate = await engine.receive(inbound)  # stored, not answered: as if the worker died here
            assert not duplicate and message.id is not None
            stored.setdefault(message.conversation_id, []).append(message.id)

    assert await engine.recover(timedelta(0)) == 12 * len(QUESTIONS)
    assert await engine.recover(timedelta(0)) == 0  # nothing is answered twice

    async with app[db_key]() as session:
        states = (await session.exec(select(Message.state).where(Message.sender == Sender.CUSTOMER))).all()
        replies = (
            await session.exec(
                select(Message.conversation_id, Message.reply_to_id)
                .where(Message.sender == Sender.BOT)
                .order_by(col(Message.id))
            )
        ).all()
    assert set(states) == {InboundState.HANDLED}
    answered: dict[int, list[int]] = {}
    for conversation_id, reply_to in replies:
        if reply_to not in answered.get(conversation_id, []):
            answered.setdefault(conversation_id, []).append(reply_to)
    assert answered == stored
