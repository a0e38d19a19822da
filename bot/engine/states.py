"""The conversation's state machine: every state x every kind of inbound message, in one table.

A turn is dispatched in two steps. First the message is *classified* (`classify`): a global
command (转人工, 取消, 退订 …), a satisfaction answer, a care (NPS) answer, a message for the
queue, free text, noise, a non-text message or a channel event. Then `TABLE[state][kind]` names
the action. Free text in a bot state goes to the router of handlers (FAQ, complaint intake, clarify
…); everything else is decided here, so a command can never be read as a flow's answer (转人工 is not
an order number) and a survey answer is recorded whoever owns the conversation.

The table is total: tests/engine/test_states.py drives every cell.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Awaitable, Callable
from datetime import datetime

from bot.engine import texts
from bot.engine.handlers.complaint import FLOW as COMPLAINT_FLOW
from bot.engine.handlers.complaint import forward_events, ticket_policy
from bot.engine.handlers.events import EventsHandler
from bot.engine.handlers.fallback import FallbackHandler
from bot.engine.handlers.faq import CLARIFY_FLOW
from bot.engine.handlers.handoff import HUMAN_WORDS, HandoffHandler
from bot.engine.handlers.scrm import CUSTOMER, NPS_THANKS, OPT_IN_REPLY, OPT_IN_WORDS, OPT_OUT_REPLY
from bot.engine.queueing import LEAVE_MESSAGE, leave_message, queue_ack
from bot.engine.router import Router
from bot.engine.turn import Turn
from bot.messages import Kind, OutboundMessage
from models import ConversationState, Direction, Message, Sender, aware
from scrm import care, nps, surveys, tickets


class State(enum.StrEnum):
    BOT = "bot"  # the bot answers; nothing pending
    COMPLAINT = "complaint"  # the bot is collecting a complaint (order -> description -> contact -> confirm)
    CLARIFY = "clarify"  # the bot asked "您是想问：1. … 2. …"
    AWAITING_SURVEY = "awaiting_survey"  # bot, and a resolved ticket's 1–5 question is unanswered (= BOT's row)
    QUEUED = "queued"  # waiting for an agent
    AGENT = "agent"  # an agent owns the conversation
    CLOSED = "closed"  # ended; a new message normally opens a new conversation (see CLOSED below)


class Said(enum.StrEnum):
    HUMAN = "human"  # 转人工 / 人工客服 …
    CANCEL = "cancel"  # 取消 / 算了 / 退出 … (the whole message)
    OPT = "opt"  # 退订 / 订阅
    SURVEY = "survey"  # a 1–5 / 没解决 answer while a resolved ticket awaits one
    CARE = "care"  # a 0–10 answer while an NPS care question awaits one
    LEAVE = "leave"  # 留言 … (a message for the team; a ticket when no agent can take it)
    TEXT = "text"  # anything else written
    NOISE = "noise"  # a keyboard mash ("asdfghjkl"): no meaning to answer
    NON_TEXT = "non_text"  # an image, voice without recognition, a location …
    EVENT = "event"  # subscribe / click / enter_session …


Action = Callable[[Turn, Router], Awaitable[list[OutboundMessage]]]


# --- classification ---------------------------------------------------------------------------------

_PUNCT = re.compile(r"[\s。.!！~～、,，]+")
_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_CONSONANT_RUN = re.compile(r"[bcdfghjklmnpqrstvwxz]{5,}")


def is_noise(text: str) -> bool:
    """A latin keyboard mash: a run of four keys along one row, or five consonants in a row."""
    word = text.strip().lower()
    if not word.isascii() or not word.isalpha() or len(word) < 5:
        return False
    rows = any(row[i : i + 4] in word for row in _KEYBOARD_ROWS for i in range(len(row) - 3))
    return rows or bool(_CONSONANT_RUN.search(word))


async def classify(turn: Turn) -> Said:
    inbound = turn.inbound
    if inbound.kind == Kind.EVENT:
        return Said.EVENT
    text = turn.text
    if not text:
        return Said.NON_TEXT
    if HUMAN_WORDS.search(text):
        return Said.HUMAN
    bare = _PUNCT.sub("", text)
    if bare in ticket_policy(turn).config.flow.cancel_words:
        return Said.CANCEL
    if care.OPT_OUT_WORDS.match(text) or text in OPT_IN_WORDS:
        return Said.OPT
    if await _survey_answer(turn):
        return Said.SURVEY
    if await _nps_answer(turn):
        return Said.CARE
    if LEAVE_MESSAGE.match(text):
        return Said.LEAVE
    if is_noise(text):
        return Said.NOISE
    return Said.TEXT


def _asked_after(turn: Turn, sent_at: datetime | None) -> bool:
    """A bot flow asked its own question after `sent_at`: a bare answer is the flow's (latest question wins)."""
    conversation = turn.conversation
    if conversation.state != ConversationState.BOT or conversation.flow in (None, ""):
        return False
    updated = (conversation.flow_state or {}).get("updated_at")
    if not updated or sent_at is None:
        return sent_at is None
    return datetime.fromisoformat(updated) > aware(sent_at)


async def _survey_answer(turn: Turn) -> bool:
    if turn.customer.id is None:
        return False
    if surveys.read_csat(turn.text, ticket_policy(turn).config.survey.reopen_words) is None:
        return False
    ticket = await tickets.awaiting_survey(turn.session, customer_id=turn.customer.id)
    return ticket is not None and not _asked_after(turn, ticket.survey_sent_at)


async def _nps_answer(turn: Turn) -> bool:
    if turn.customer.id is None or nps.parse_nps(turn.text) is None:
        return False
    delivery = await nps.awaiting_nps(turn.session, customer_id=turn.customer.id, now=turn.services.clock())
    return delivery is not None and not _asked_after(turn, delivery.sent_at)


def state_of(turn: Turn, said: Said) -> State:
    """The conversation's state. AWAITING_SURVEY acts as BOT for every kind but a survey answer, so it is
    told apart only then (`classify` already found the ticket): no extra query on every bot turn."""
    conversation = turn.conversation
    if conversation.state == ConversationState.QUEUED:
        return State.QUEUED
    if conversation.state == ConversationState.AGENT:
        return State.AGENT
    if conversation.state == ConversationState.CLOSED:
        return State.CLOSED
    if conversation.flow == COMPLAINT_FLOW:
        return State.COMPLAINT
    if conversation.flow == CLARIFY_FLOW:
        return State.CLARIFY
    return State.AWAITING_SURVEY if said == Said.SURVEY else State.BOT


# --- actions ----------------------------------------------------------------------------------------


async def route(turn: Turn, router: Router) -> list[OutboundMessage]:
    """The bot's handlers (complaint flow, FAQ, clarify, small talk, fallback …) answer."""
    handled_by, outs = await router.route(turn)
    turn.handled_by = handled_by
    return outs


async def fallback(turn: Turn, router: Router) -> list[OutboundMessage]:
    turn.handled_by = "fallback"
    return await FallbackHandler().handle(turn)


async def handoff(turn: Turn, router: Router) -> list[OutboundMessage]:
    return await HandoffHandler().handle(turn)


async def queued_ack(turn: Turn, router: Router) -> list[OutboundMessage]:
    """Every message while waiting is acknowledged: position, expected wait, or when agents are back."""
    return await queue_ack(turn)


async def already_agent(turn: Turn, router: Router) -> list[OutboundMessage]:
    return [OutboundMessage(text=texts.ALREADY_WITH_AGENT)]


async def cancel_flow(turn: Turn, router: Router) -> list[OutboundMessage]:
    """取消 inside a bot flow: the flow ends (the complaint flow says so in its own words)."""
    if turn.conversation.flow == COMPLAINT_FLOW:
        turn.set_flow(None)
        return [OutboundMessage(text=ticket_policy(turn).config.text("cancelled"))]
    turn.set_flow(None)
    return [OutboundMessage(text=texts.CANCELLED)]


async def nothing_to_cancel(turn: Turn, router: Router) -> list[OutboundMessage]:
    return [OutboundMessage(text=texts.NOTHING_TO_CANCEL)]


async def leave_queue(turn: Turn, router: Router) -> list[OutboundMessage]:
    conversation = turn.conversation
    conversation.state = ConversationState.BOT
    conversation.fallback_count = 0
    turn.emit("conversation.updated", {"conversation_id": conversation.id, "state": ConversationState.BOT})
    return [OutboundMessage(text=texts.LEFT_QUEUE)]


async def consent(turn: Turn, router: Router) -> list[OutboundMessage]:
    assert turn.customer.id is not None
    granted = turn.text in OPT_IN_WORDS
    await care.set_consent(turn.session, customer_id=turn.customer.id, granted=granted, actor=CUSTOMER)
    return [OutboundMessage(text=OPT_IN_REPLY if granted else OPT_OUT_REPLY)]


async def survey(turn: Turn, router: Router) -> list[OutboundMessage]:
    """Record the 1–5 answer: 4–5 closes the ticket, 1–3 reopens and escalates it; the ticket verbs
    tell the customer which. With an agent on the conversation, the agent sees it in the thread."""
    policy = ticket_policy(turn)
    answer = surveys.read_csat(turn.text, policy.config.survey.reopen_words)
    assert answer is not None and turn.customer.id is not None
    ticket = await tickets.awaiting_survey(turn.session, customer_id=turn.customer.id)
    assert ticket is not None
    await surveys.record_csat(
        turn.session, policy=policy, ticket=ticket, answer=answer,
        channel=str(turn.conversation.channel), conversation_id=turn.conversation.id,
    )  # fmt: skip
    if turn.conversation.state in (ConversationState.AGENT, ConversationState.QUEUED):
        said = f"{answer.score} 分" if answer.score is not None else "没解决"
        if ticket.status == tickets.S.CLOSED:
            outcome = "已关闭"
        else:
            outcome = "已重新打开，" + ("已升级给主管" if ticket.escalated_to_id else "已列入升级待办队列")
        _note(turn, f"客户对工单 {ticket.number} 的满意度评价：{said}（工单{outcome}）")
    forward_events(turn)
    return []  # the closed / reopened notice was recorded by the ticket verb


async def care_answer(turn: Turn, router: Router) -> list[OutboundMessage]:
    assert turn.customer.id is not None
    answer = nps.parse_nps(turn.text)
    delivery = await nps.awaiting_nps(turn.session, customer_id=turn.customer.id, now=turn.services.clock())
    assert answer is not None and delivery is not None
    await nps.record_nps(
        turn.session, customer_id=turn.customer.id, answer=answer, channel=str(turn.conversation.channel),
        conversation_id=turn.conversation.id, delivery=delivery,
    )  # fmt: skip
    if turn.conversation.state in (ConversationState.AGENT, ConversationState.QUEUED):
        _note(turn, f"客户的推荐度评分（NPS）：{answer.score} 分")
    return [OutboundMessage(text=NPS_THANKS)]


async def leave(turn: Turn, router: Router) -> list[OutboundMessage]:
    return await leave_message(turn)


async def relay(turn: Turn, router: Router) -> list[OutboundMessage]:
    """An agent owns the conversation: the message is in the agent's thread; the bot stays silent."""
    turn.handled_by = "agent"
    return []


async def event(turn: Turn, router: Router) -> list[OutboundMessage]:
    turn.handled_by = "events"
    return await EventsHandler().handle(turn)


async def event_quiet(turn: Turn, router: Router) -> list[OutboundMessage]:
    """A channel event while a person serves or is awaited: its side effects, no welcome text."""
    await EventsHandler().handle(turn)
    turn.handled_by = "events"
    return []


def _note(turn: Turn, text: str) -> None:
    """An internal line in the agent's thread (never sent to the customer)."""
    conversation = turn.conversation
    note = Message(
        conversation_id=conversation.id or 0, customer_id=conversation.customer_id, channel=conversation.channel,
        direction=Direction.OUT, sender=Sender.NOTE, text=text, created_at=turn.services.clock(),
    )  # fmt: skip
    turn.session.add(note)
    turn.notes.append(note)


# --- the table ----------------------------------------------------------------------------------------

_BOT: dict[Said, Action] = {
    Said.HUMAN: handoff, Said.CANCEL: nothing_to_cancel, Said.OPT: consent, Said.SURVEY: survey,
    Said.CARE: care_answer, Said.LEAVE: route, Said.TEXT: route, Said.NOISE: fallback,
    Said.NON_TEXT: route, Said.EVENT: event,
}  # fmt: skip
_FLOW: dict[Said, Action] = {**_BOT, Said.CANCEL: cancel_flow, Said.NOISE: route}  # the flow re-asks its question

TABLE: dict[State, dict[Said, Action]] = {
    State.BOT: _BOT,
    State.AWAITING_SURVEY: _BOT,
    State.COMPLAINT: _FLOW,
    State.CLARIFY: _FLOW,
    State.QUEUED: {
        Said.HUMAN: queued_ack, Said.CANCEL: leave_queue, Said.OPT: consent, Said.SURVEY: survey,
        Said.CARE: care_answer, Said.LEAVE: leave, Said.TEXT: queued_ack, Said.NOISE: queued_ack,
        Said.NON_TEXT: queued_ack, Said.EVENT: event_quiet,
    },
    State.AGENT: {
        Said.HUMAN: already_agent, Said.CANCEL: relay, Said.OPT: consent, Said.SURVEY: survey,
        Said.CARE: care_answer, Said.LEAVE: relay, Said.TEXT: relay, Said.NOISE: relay,
        Said.NON_TEXT: relay, Said.EVENT: event_quiet,
    },
    # Reached only by a message stored before its conversation was closed and answered after (recovery):
    # it is answered as the bot would, so an acknowledged message is never dropped.
    State.CLOSED: _BOT,
}  # fmt: skip


async def dispatch(turn: Turn, router: Router) -> tuple[State, Said, list[OutboundMessage]]:
    said = await classify(turn)
    state = state_of(turn, said)
    action = TABLE[state][said]
    turn.handled_by = action.__name__
    outs = await action(turn, router)
    return state, said, outs
