"""Complaints: detection (intent, anger, trigger words) and the slot-filling flow that ends in a ticket.

The flow lives in `conversation.flow == "complaint"` / `flow_state`:
    order -> description -> contact -> confirm -> ticket (number + first-response due time)
with empathy first, "取消" at any step, corrections ("修改订单号" …, or simply sending an order
number again), and a timeout after which the flow ends quietly and the message is read afresh.
If the customer already has an open ticket on the same order, what they said is added to it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.engine.decision import complaint_reason
from bot.engine.turn import Turn
from bot.messages import OutboundMessage
from models import aware
from models.ticket import TicketStatus
from scrm import tickets
from scrm.audit import Actor
from scrm.privacy import mask_phone
from scrm.tickets import TicketPolicy

FLOW = "complaint"
BOT = Actor.system("bot")
CUSTOMER = Actor(id=None, name="customer", role="customer")
PHONE = re.compile(r"(?<!\d)(1[3-9]\d{9})(?!\d)")
NO_ORDER = re.compile(
    r"^\s*(无|没有|没|不知道|忘了|不记得|找不到|跳过|不用)\s*[。.!！]?\s*$"
    r"|(没有|没|无|不知道|忘了|不记得|找不到)(订单|单号)"
)
MAX_ORDER_TRIES = 2  # then go on without one: a complaint must not stall on a number
CHAT_HERE = re.compile(r"^\s*(1|在这里|这里|在线|线上|聊天|文字)\s*[。.!！]?\s*$")
NO_CONTACT = re.compile(r"^\s*(不用|不需要|无|都行|随便)\s*[。.!！]?\s*$")
CONFIRM = re.compile(r"^\s*(确认|确定|提交|是的?|对|好的?|没问题|ok|OK|嗯)\s*[。.!！]?\s*$")
CORRECT_ORDER = re.compile(r"(修改|更正|改)(一下)?订单")
CORRECT_DESCRIPTION = re.compile(r"(修改|更正|改)(一下)?(问题|描述|内容)")
CORRECT_CONTACT = re.compile(r"(修改|更正|改)(一下)?(联系|电话|手机)")
_STRIP = re.compile(r"[\s，,。.!！?？~～、:：;；\"'“”‘’（）()【】\[\]]+")
MIN_DESCRIPTION = 4


@dataclass(frozen=True, slots=True)
class _Parse:
    """The first message's NLU reading, kept in the flow state for triage at the end."""

    intent: str
    confidence: float
    anger: float


def ticket_policy(turn: Turn) -> TicketPolicy:
    """The ticket configuration for this engine (read once, on the engine's clock)."""
    services = turn.services
    if services.tickets is None:
        settings = services.settings
        services.tickets = TicketPolicy.load(
            settings.tickets_config, data_dir=settings.data_dir, clock=lambda: services.clock()
        )  # the engine's clock as it is at each call (tests move it)
    return services.tickets


def forward_events(turn: Turn) -> None:
    for topic, data in tickets.take_events(turn.session):
        turn.emit(topic, data)


def find_order(policy: TicketPolicy, text: str, entities: Any = ()) -> str | None:
    for entity in entities or ():
        if getattr(entity, "entity", "") == "order_id" and getattr(entity, "value", None):
            value = str(entity.value)
            if policy.config.order_regex.fullmatch(value):
                return value
    match = policy.config.order_regex.search(text)
    return match.group(0) if match else None


def description_from(policy: TicketPolicy, text: str, order: str | None) -> str:
    """The first message is the description when there is more to it than trigger words and the order."""
    rest = text.replace(order or "\0", "")
    for word in [*policy.config.detection.trigger_words, "订单号", "订单", "我要", "你们"]:
        rest = rest.replace(word, "")
    return text.strip() if len(_STRIP.sub("", rest)) >= MIN_DESCRIPTION else ""


class ComplaintHandler:
    """Starts the complaint flow when a message looks like a complaint."""

    name = "complaint"

    async def applies(self, turn: Turn) -> bool:
        if not turn.text or turn.conversation.flow == FLOW:
            return False  # any other pending flow (e.g. a clarify question) gives way to a complaint
        policy = ticket_policy(turn)
        if any(word in turn.text for word in policy.config.detection.trigger_words):
            return True
        return complaint_reason(policy.config.detection, turn.text, await turn.parse()) is not None

    async def handle(self, turn: Turn) -> list[OutboundMessage]:
        policy = ticket_policy(turn)
        parsed = await turn.parse()
        why = complaint_reason(policy.config.detection, turn.text, parsed) or "trigger"
        order = find_order(policy, turn.text, parsed.entities)
        state: dict[str, Any] = {
            "order": order,
            "order_asked": False,
            "description": description_from(policy, turn.text, order),
            "contact": None,
            "phone": None,
            "why": why,
            "nlu": {"intent": parsed.intent, "confidence": parsed.confidence, "anger": parsed.anger},
            "started_at": _iso(turn.services.clock()),
        }
        if order is not None:
            state["order_asked"] = True
            added = await _add_to_open_ticket(turn, policy, order, state["description"] or turn.text)
            if added is not None:
                return added
        turn.emit("complaint.detected", {"conversation_id": turn.conversation.id, "why": why})
        return [OutboundMessage(text=policy.config.text("empathy") + _next_question(turn, policy, state))]


class ComplaintFlowHandler:
    """Every message while the complaint flow is active."""

    name = "complaint_flow"

    async def applies(self, turn: Turn) -> bool:
        if turn.conversation.flow != FLOW or not (turn.text or _photo(turn)):
            return False
        policy = ticket_policy(turn)
        state = turn.conversation.flow_state or {}
        if _expired(state, turn.services.clock(), policy):
            turn.set_flow(None)  # ended quietly; the message is read afresh by the other handlers
            turn.emit("complaint.timed_out", {"conversation_id": turn.conversation.id})
            return False
        return True

    async def handle(self, turn: Turn) -> list[OutboundMessage]:
        policy = ticket_policy(turn)
        config = policy.config
        state = dict(turn.conversation.flow_state or {})
        text = turn.text
        step = state.get("step")
        photo = _photo(turn)
        if photo is not None:  # kept for the ticket; the question stands
            state["photos"] = [*state.get("photos", []), photo][-9:]
            thanks = config.texts.get("photo_received", "已收到照片。")
            return [OutboundMessage(text=thanks + _next_question(turn, policy, state))]
        if any(word in text for word in config.flow.cancel_words):
            turn.set_flow(None)
            return [OutboundMessage(text=config.text("cancelled"))]
        if CORRECT_ORDER.search(text):
            state.update(order=None, order_asked=False)
            return [OutboundMessage(text=_next_question(turn, policy, state))]
        if CORRECT_DESCRIPTION.search(text):
            state.update(description="")
            return [OutboundMessage(text=_next_question(turn, policy, state))]
        if CORRECT_CONTACT.search(text):
            state.update(contact=None, phone=None)
            return [OutboundMessage(text=_next_question(turn, policy, state))]

        if step == "order":
            order = find_order(policy, text)
            if order is None and NO_ORDER.search(text):
                state.update(order=None, order_asked=True)
            elif order is None:
                state["order_tries"] = int(state.get("order_tries", 0)) + 1
                if state["order_tries"] < MAX_ORDER_TRIES:
                    turn.set_flow(FLOW, {**state, "updated_at": _iso(turn.services.clock())})
                    return [OutboundMessage(text=config.text("ask_order_again"))]
                state.update(order=None, order_asked=True)
                if not state.get("description") and len(_STRIP.sub("", text)) >= MIN_DESCRIPTION:
                    state["description"] = text[:2000]
            else:
                state.update(order=order, order_asked=True)
                added = await _add_to_open_ticket(turn, policy, order, state.get("description") or "")
                if added is not None:
                    return added
        elif step == "description":
            state["description"] = text[:2000]
        elif step == "contact":
            phone = PHONE.search(text)
            if phone:
                state.update(contact="phone", phone=phone.group(1))
            elif CHAT_HERE.match(text):
                state.update(contact="chat")
            elif NO_CONTACT.match(text):
                state.update(contact="none")
            else:
                return [OutboundMessage(text=config.text("ask_contact_again"))]
        elif step == "confirm":
            order = find_order(policy, text)
            if order and order != state.get("order"):  # a corrected order number sent as is
                state.update(order=order, order_asked=True)
            elif CONFIRM.match(text):
                return await _open(turn, policy, state)
        return [OutboundMessage(text=_next_question(turn, policy, state))]


def _next_question(turn: Turn, policy: TicketPolicy, state: dict[str, Any]) -> str:
    """Ask for the first missing slot, or show the summary to confirm; saves the state."""
    config = policy.config
    if not state.get("order_asked"):
        step, question = "order", config.text("ask_order")
    elif not state.get("description"):
        step, question = "description", config.text("ask_description")
    elif not state.get("contact"):
        step, question = "contact", config.text("ask_contact")
    else:
        phone = mask_phone(state.get("phone")) or "无"
        contact = {"chat": "在线回复", "none": "无需联系"}.get(state["contact"], phone)
        step = "confirm"
        question = config.text(
            "confirm", order=state.get("order") or "无", description=state["description"][:200], contact=contact
        )
    state["step"] = step
    state["updated_at"] = _iso(turn.services.clock())
    turn.set_flow(FLOW, state)
    return question


async def _open(turn: Turn, policy: TicketPolicy, state: dict[str, Any]) -> list[OutboundMessage]:
    nlu = state.get("nlu") or {}
    ticket = await tickets.open_ticket(
        turn.session,
        policy=policy,
        customer_id=turn.customer.id or 0,
        description=state["description"],
        actor=BOT,
        channel=str(turn.conversation.channel),
        conversation_id=turn.conversation.id,
        order_no=state.get("order"),
        contact_preference=state.get("contact"),
        contact_phone=state.get("phone"),
        parse=_Parse(str(nlu.get("intent", "")), float(nlu.get("confidence", 0)), float(nlu.get("anger", 0))),
        notify=False,  # the confirmation below is the "received" notice
    )
    tickets.record_event(turn.session, ticket, BOT, "notified", note="received", data={"via": "reply"})
    if state.get("photos"):
        tickets.record_event(turn.session, ticket, CUSTOMER, "photos", note=f"客户上传了 {len(state['photos'])} 张照片",
                             data={"images": state["photos"]})  # fmt: skip
    turn.set_flow(None)
    forward_events(turn)
    due = tickets.local_time(policy, ticket.first_response_due)
    return [OutboundMessage(text=policy.config.text("received", number=ticket.number, due=due),
                            meta={"ticket": ticket.number})]  # fmt: skip


async def _add_to_open_ticket(turn: Turn, policy: TicketPolicy, order: str, text: str) -> list[OutboundMessage] | None:
    existing = await tickets.find_open_ticket(turn.session, customer_id=turn.customer.id or 0, order_no=order)
    if existing is None:
        return None
    if existing.status == TicketStatus.RESOLVED:  # complaining again about a "resolved" order: not solved
        await tickets.reopen(turn.session, policy=policy, ticket=existing, actor=CUSTOMER, reason=text or turn.text)
        turn.set_flow(None)
        forward_events(turn)
        return []  # the reopened notice was recorded by the verb
    await tickets.add_to_ticket(
        turn.session, policy=policy, ticket=existing, actor=CUSTOMER, text=text or turn.text,
        data={"message_id": turn.message.id},
    )  # fmt: skip
    turn.set_flow(None)
    forward_events(turn)
    return [OutboundMessage(text=policy.config.text("added_to_ticket", number=existing.number),
                            meta={"ticket": existing.number})]  # fmt: skip


def _photo(turn: Turn) -> str | None:
    """The stored name of a photo the customer sent in this turn (bot.attachments)."""
    image = turn.inbound.payload.get("image")
    return str(image["name"]) if isinstance(image, dict) and image.get("name") else None


def _expired(state: dict[str, Any], now: datetime, policy: TicketPolicy) -> bool:
    updated = state.get("updated_at")
    if not updated:
        return False
    moment = datetime.fromisoformat(updated)
    return now - aware(moment) > timedelta(minutes=policy.config.flow.timeout_minutes)


def _iso(moment: datetime) -> str:
    return aware(moment).isoformat()
