"""The conversation state table, every cell: each state a conversation can be in x each kind of message.

Every cell starts a fresh customer, puts the conversation in the state through the real verbs (the
engine, the console's take-over, the ticket and care tables), sends one message of the kind through
`Engine.handle` and checks what the customer is told and what the database holds afterwards.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from bot.engine import Engine, TurnResult, texts
from bot.engine.handlers.scrm import NPS_THANKS, OPT_OUT_REPLY
from bot.engine.states import TABLE, Said, State, is_noise
from bot.keys import db_key, engine_key
from bot.messages import Channel, InboundMessage, Kind
from models import (
    Conversation,
    ConversationState,
    Message,
    Presence,
    Role,
    Sender,
    SurveyResponse,
    User,
)
from models.scrm import CareDelivery, CareKind, CareRule, Consent, DeliveryStatus
from models.ticket import SurveyKind, Ticket, TicketStatus
from scrm import conversations as conv
from scrm.db import transaction

MONDAY_10 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai: within service hours
SURVEY_ANSWER = "2分，黑屏的问题根本没人跟我确认，不满意"

MESSAGES: dict[Said, tuple[Kind, str, str | None]] = {
    Said.HUMAN: (Kind.TEXT, "转人工", None),
    Said.CANCEL: (Kind.TEXT, "取消", None),
    Said.OPT: (Kind.TEXT, "退订", None),
    Said.SURVEY: (Kind.TEXT, SURVEY_ANSWER, None),
    Said.CARE: (Kind.TEXT, "9", None),
    Said.LEAVE: (Kind.TEXT, "留言 请明天上午给我回电话", None),
    Said.TEXT: (Kind.TEXT, "怎么退货", None),
    Said.NOISE: (Kind.TEXT, "asdfghjkl", None),
    Said.NON_TEXT: (Kind.IMAGE, "", None),
    Said.EVENT: (Kind.EVENT, "", "enter_session"),
}


@dataclass
class Cell:
    engine: Engine
    app: Any
    visitor: str
    agent_id: int
    state: State
    said: Said
    before: Conversation | None = None
    result: TurnResult | None = None

    async def send(self, kind: Kind, text: str, event: str | None = None) -> TurnResult:
        inbound = InboundMessage(Channel.WEBCHAT, "web", self.visitor, uuid.uuid4().hex, kind, text, event=event)
        return await self.engine.handle(inbound)

    async def conversation(self) -> Conversation:
        async with self.app[db_key]() as session:
            rows = (
                await session.exec(
                    select(Conversation).where(Conversation.external_id == self.visitor).order_by(col(Conversation.id))
                )
            ).all()
        return rows[-1]

    @property
    def texts(self) -> list[str]:
        assert self.result is not None
        return [r.text for r in self.result.replies]


# --- putting a conversation in each state ----------------------------------------------------------


async def customer_id(cell: Cell) -> int:
    return (await cell.conversation()).customer_id


async def pending_survey(cell: Cell, sent_at: datetime) -> None:
    """A resolved ticket whose 1–5 question went out at `sent_at`."""
    cid = await customer_id(cell)
    async with transaction(cell.app[db_key]) as session:
        session.add(Ticket(customer_id=cid, channel="webchat", description="黑屏", number=f"T-{uuid.uuid4().hex[:8]}",
                           status=TicketStatus.RESOLVED, resolved_at=sent_at, survey_sent_at=sent_at))  # fmt: skip


async def pending_nps(cell: Cell, sent_at: datetime) -> None:
    cid = await customer_id(cell)
    async with transaction(cell.app[db_key]) as session:
        rule = (await session.exec(select(CareRule).where(CareRule.name == "NPS"))).first()
        if rule is None:
            rule = CareRule(name="NPS", kind=CareKind.NPS, template="您会向朋友推荐我们吗？0–10 分")
            session.add(rule)
            await session.flush()
        assert rule.id is not None
        session.add(CareDelivery(rule_id=rule.id, customer_id=cid, period=uuid.uuid4().hex[:8],
                                 status=DeliveryStatus.SENT, channel="webchat", sent_at=sent_at))  # fmt: skip


async def enter(cell: Cell) -> None:
    """Put the cell's conversation in its state; then the pending questions its kind answers."""
    state = cell.state
    opening = {
        State.COMPLAINT: "我要投诉",
        State.QUEUED: "转人工",
        State.AGENT: "转人工",
        State.CLOSED: "你好",
    }.get(state, "你好")
    await cell.send(Kind.TEXT, opening)
    if state == State.CLARIFY:
        async with transaction(cell.app[db_key]) as session:
            row = await session.get_one(Conversation, (await cell.conversation()).id)
            row.flow, row.flow_state = "clarify", {"options": [1, 2], "updated_at": MONDAY_10.isoformat()}
    if state == State.AGENT:
        async with transaction(cell.app[db_key]) as session:
            agent = await session.get_one(User, cell.agent_id)
            await conv.take_over(session, conversation_id=(await cell.conversation()).id or 0, agent=agent)
    if state == State.AWAITING_SURVEY or cell.said == Said.SURVEY:
        await pending_survey(cell, MONDAY_10)  # not before any flow's question (the latest question wins)
    if cell.said == Said.CARE:
        await pending_nps(cell, MONDAY_10)
    cell.before = await cell.conversation()


# --- what each action must have done ----------------------------------------------------------------


async def expect_queued(cell: Cell) -> None:
    after = await cell.conversation()
    assert after.state == ConversationState.QUEUED and after.flow is None
    assert len(cell.texts) == 1 and cell.texts[0].startswith(texts.HANDOFF_QUEUED)
    assert texts.QUEUE_NEXT.format(position=1) in cell.texts[0]  # a present agent with room: next in line


async def expect_queue_ack(cell: Cell) -> None:
    assert (await cell.conversation()).state == ConversationState.QUEUED
    assert cell.texts == [texts.QUEUE_RECEIVED + texts.QUEUE_NEXT.format(position=1)]


async def expect_unchanged(cell: Cell) -> None:
    after, before = await cell.conversation(), cell.before
    assert before is not None
    assert (after.id, after.state, after.flow) == (before.id, before.state, before.flow)


async def expect_nothing_to_cancel(cell: Cell) -> None:
    assert cell.texts == [texts.NOTHING_TO_CANCEL]
    await expect_unchanged(cell)


async def expect_flow_cancelled(cell: Cell) -> None:
    after = await cell.conversation()
    assert after.state == ConversationState.BOT and after.flow is None
    assert len(cell.texts) == 1 and ("已取消" in cell.texts[0])


async def expect_left_queue(cell: Cell) -> None:
    assert (await cell.conversation()).state == ConversationState.BOT
    assert cell.texts == [texts.LEFT_QUEUE]


async def expect_opted_out(cell: Cell) -> None:
    assert cell.texts == [OPT_OUT_REPLY]
    async with cell.app[db_key]() as session:
        consent = (await session.exec(select(Consent).where(Consent.customer_id == await customer_id(cell)))).all()
    assert consent and all(not c.granted for c in consent)
    await expect_unchanged(cell)


async def expect_survey_recorded(cell: Cell) -> None:
    cid = await customer_id(cell)
    async with cell.app[db_key]() as session:
        [answer] = (await session.exec(select(SurveyResponse).where(SurveyResponse.customer_id == cid))).all()
        [ticket] = (await session.exec(select(Ticket).where(Ticket.customer_id == cid))).all()
        notes = (
            await session.exec(select(Message.text).where(Message.customer_id == cid, Message.sender == Sender.NOTE))
        ).all()
        told = (
            await session.exec(
                select(Message.text).where(Message.customer_id == cid, Message.sender != Sender.NOTE,
                                           col(Message.text).contains("重新打开"))
            )
        ).all()  # fmt: skip
    assert (answer.kind, answer.score, answer.resolved) == (SurveyKind.CSAT, 2, False)
    assert ticket.status == TicketStatus.REOPENED and ticket.escalation_level == 1
    assert len(told) == 1  # the customer hears it once, whoever owns the conversation
    with_person = cell.before is not None and cell.before.state in (ConversationState.AGENT, ConversationState.QUEUED)
    assert len(notes) == (1 if with_person else 0)  # the agent sees the score in the thread
    if with_person:
        assert "2 分" in notes[0] and ticket.number in notes[0]
    await expect_unchanged(cell)


async def expect_nps_recorded(cell: Cell) -> None:
    async with cell.app[db_key]() as session:
        [answer] = (
            await session.exec(select(SurveyResponse).where(SurveyResponse.customer_id == await customer_id(cell)))
        ).all()
    assert (answer.kind, answer.score) == (SurveyKind.NPS, 9)
    assert cell.texts == [NPS_THANKS]
    await expect_unchanged(cell)


async def expect_left_message(cell: Cell) -> None:
    async with cell.app[db_key]() as session:
        [ticket] = (await session.exec(select(Ticket).where(Ticket.customer_id == await customer_id(cell)))).all()
    assert ticket.description == "请明天上午给我回电话" and ticket.number
    assert len(cell.texts) == 1 and ticket.number in cell.texts[0]
    assert (await cell.conversation()).state == ConversationState.BOT


async def expect_bot_answer(cell: Cell) -> None:
    """The router's handlers answered (FAQ, the flow's next question, the non-text notice …)."""
    assert cell.result is not None and cell.result.replies
    assert cell.result.handled_by not in ("route", "")


async def expect_fallback(cell: Cell) -> None:
    assert cell.texts in ([texts.FALLBACK], [texts.FALLBACK_REPEATED])
    assert texts.GREETING not in cell.texts


async def expect_already_agent(cell: Cell) -> None:
    assert cell.texts == [texts.ALREADY_WITH_AGENT]
    await expect_unchanged(cell)


async def expect_silent(cell: Cell) -> None:
    assert cell.texts == []
    await expect_unchanged(cell)


async def expect_welcome(cell: Cell) -> None:
    assert cell.texts == [texts.WELCOME]


EXPECT: dict[str, Callable[[Cell], Awaitable[None]]] = {
    "handoff": expect_queued,
    "queued_ack": expect_queue_ack,
    "nothing_to_cancel": expect_nothing_to_cancel,
    "cancel_flow": expect_flow_cancelled,
    "leave_queue": expect_left_queue,
    "consent": expect_opted_out,
    "survey": expect_survey_recorded,
    "care_answer": expect_nps_recorded,
    "leave": expect_left_message,
    "route": expect_bot_answer,
    "fallback": expect_fallback,
    "already_agent": expect_already_agent,
    "relay": expect_silent,
    "event": expect_welcome,
    "event_quiet": expect_silent,
}


@pytest.fixture
async def world(client: Any) -> tuple[Any, Engine, int]:
    app = client.server.app
    engine = app[engine_key]
    engine.services.clock = lambda: MONDAY_10
    async with transaction(app[db_key]) as session:
        agent = User(username="duty-agent", role=Role.AGENT, presence=Presence.ONLINE, password_hash="x")
        session.add(agent)
        await session.flush()
        assert agent.id is not None
        return app, engine, agent.id


def test_the_table_is_total() -> None:
    assert set(TABLE) == set(State)
    assert TABLE[State.AWAITING_SURVEY] == TABLE[State.BOT]  # (why `state_of` needs no query for it)
    for state, row in TABLE.items():
        assert set(row) == set(Said), state
        assert {action.__name__ for action in row.values()} <= set(EXPECT)


@pytest.mark.parametrize(("state", "said"), list(itertools.product(
    [s for s in State if s != State.CLOSED], list(Said))))  # fmt: skip
async def test_every_state_and_kind(world: tuple[Any, Engine, int], state: State, said: Said) -> None:
    app, engine, agent_id = world
    cell = Cell(engine, app, f"v-{state}-{said}", agent_id, state, said)
    await enter(cell)
    kind, text, event = MESSAGES[said]
    cell.result = await cell.send(kind, text, event)
    await EXPECT[TABLE[state][said].__name__](cell)


@pytest.mark.parametrize("said", list(Said))
async def test_closed_conversation_a_message_stored_before_closing_is_answered_once(
    world: tuple[Any, Engine, int], said: Said
) -> None:
    """A message acknowledged (stored) while the conversation was open, answered after an agent closed it:
    answered once, as the bot would answer; a message after the close opens a new conversation."""
    app, engine, _agent_id = world
    cell = Cell(engine, app, f"v-closed-{said}", _agent_id, State.CLOSED, said)
    await enter(cell)
    kind, text, event = MESSAGES[said]
    stored, _ = await engine.receive(InboundMessage(Channel.WEBCHAT, "web", cell.visitor, f"c-{said}", kind, text,
                                                    event=event))  # fmt: skip
    async with transaction(app[db_key]) as session:
        admin = User(username=f"closer-{said}", role=Role.ADMIN, password_hash="x")
        session.add(admin)
        await session.flush()
        await conv.close_conversation(session, conversation_id=stored.conversation_id, by=admin)
    assert stored.id is not None
    cell.before = await cell.conversation()
    cell.result = await engine.process(stored.id)
    again = await engine.process(stored.id)
    assert [r.message_id for r in again.replies] == [r.message_id for r in cell.result.replies]  # exactly once
    action = TABLE[State.CLOSED][said].__name__
    if action == "handoff":  # 转人工 works in every state: the customer is queued again
        assert (await cell.conversation()).state == ConversationState.QUEUED
        return
    assert (await cell.conversation()).state == ConversationState.CLOSED
    assert cell.result.replies or action in ("relay", "event_quiet", "survey")
    after = await cell.send(Kind.TEXT, "你好")
    assert after.conversation_id != stored.conversation_id  # the next message starts afresh


async def test_a_flow_question_asked_after_the_survey_takes_the_bare_number(world: tuple[Any, Engine, int]) -> None:
    """The latest question wins: a clarify question asked after the 1–5 survey gets "2"."""
    app, engine, agent_id = world
    cell = Cell(engine, app, "v-latest", agent_id, State.CLARIFY, Said.TEXT)
    await cell.send(Kind.TEXT, "你好")
    await pending_survey(cell, MONDAY_10 - timedelta(minutes=5))
    async with transaction(app[db_key]) as session:
        row = await session.get_one(Conversation, (await cell.conversation()).id)
        row.flow, row.flow_state = "clarify", {"options": [1, 2], "updated_at": MONDAY_10.isoformat()}
    result = await cell.send(Kind.TEXT, "2")
    assert result.handled_by == "clarify"
    async with app[db_key]() as session:
        assert (await session.exec(select(SurveyResponse))).all() == []


def test_noise_is_a_keyboard_mash_not_a_word() -> None:
    assert is_noise("asdfghjkl") and is_noise("qwerty") and is_noise("xzcvbnm")
    assert not any(is_noise(t) for t in ("hello", "iphone", "thanks", "ok", "DD2026112300001", "退货", "wifi"))
