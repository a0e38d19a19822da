"""Engine: store the inbound message, then answer it exactly once, in order per conversation."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import structlog
from sqlalchemy import update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from sqlmodel import col, select

from bot import metrics
from bot.engine.router import Handler, Observer, Router
from bot.engine.services import Services
from bot.engine.states import dispatch
from bot.engine.turn import AnswerSlot, Turn
from bot.messages import Channel, InboundMessage, Kind
from models import Conversation, Customer, InboundState, Message, Sender
from nlu import ParseResult
from scrm.db import SessionFactory, transaction
from scrm.interactions import Received, record_inbound, record_outbound

log = structlog.get_logger(__name__)
RECEIVE_ATTEMPTS = 3
BUSY_RETRY_PAUSES = (0.5, 2.0)  # seconds between tries of a turn the database was too busy for
RECOVERY_LANES = 8  # conversations the recovery job answers at once on PostgreSQL (a fraction of the pool)
T = TypeVar("T")
RACE_SQLSTATES = ("23505", "40P01", "40001")  # unique violation, deadlock, serialization failure


def _race(exc: DBAPIError) -> bool:
    if isinstance(exc, IntegrityError):
        return True
    return str(getattr(exc.orig, "sqlstate", "") or getattr(exc.orig, "pgcode", "")) in RACE_SQLSTATES


@dataclass(frozen=True, slots=True)
class Reply:
    message_id: int
    outbox_id: int | None
    text: str
    payload: dict[str, Any]
    in_answer: bool = False  # carried by the channel's HTTP answer (see AnswerSlot), not the outbox


@dataclass
class TurnResult:
    message_id: int
    conversation_id: int
    customer_id: int
    duplicate: bool = False
    handled_by: str = ""
    replies: list[Reply] = field(default_factory=list)


class Engine:
    def __init__(
        self,
        sessions: SessionFactory,
        services: Services,
        handlers: list[Handler],
        observers: list[Observer] | None = None,
    ) -> None:
        self.sessions = sessions
        self.services = services
        self.router = Router(handlers)
        self.observers = list(observers or [])
        self._locks: weakref.WeakValueDictionary[int | str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def handle(self, inbound: InboundMessage, slot: AnswerSlot | None = None) -> TurnResult:
        """Receive and answer one inbound message in one transaction (a retry gets the first answer back).

        For channels that acknowledge a message only with their HTTP answer (web-chat, WeChat's
        passive reply): nothing is acknowledged before the commit, so storing and answering together
        loses nothing and saves a round of writes. Replies that fit `slot` are recorded as delivered
        in that answer.
        """
        started = time.perf_counter()
        text = inbound.text.strip()
        parsed = await self.services.nlu.parse(text) if text else None  # before the write lock
        result, turn = await _retry_races(inbound, lambda: self._store_and_answer(inbound, parsed, slot))
        if result.duplicate:
            metrics.DUPLICATES.labels(inbound.channel).inc()
        elif turn is not None:  # a new message is always answered in this turn
            metrics.MESSAGES_IN.labels(inbound.channel).inc()
            await self.services.bus.publish("message", message_event(turn.message))
        if turn is not None:
            await self._emit(turn, result.handled_by)
            metrics.ANSWER_LATENCY.labels(inbound.channel).observe(time.perf_counter() - started)
        return result

    async def _store_and_answer(
        self, inbound: InboundMessage, parsed: ParseResult | None, slot: AnswerSlot | None
    ) -> tuple[TurnResult, Turn | None]:
        async with self._lock(_identity_key(inbound)), transaction(self.sessions) as session:
            received = await self._record(session, inbound)
            message, duplicate = received.message, received.duplicate
            assert message.id is not None
            if duplicate and not await self._claim(session, message.id):
                return await self._recorded_result(session, message.id), None
            turn = await self._load_turn(session, message, parsed)  # `received` keeps its rows in the session
            handled_by, replies = await self._answer(turn, slot)
        result = TurnResult(message.id, message.conversation_id, message.customer_id, duplicate, handled_by, replies)
        return result, turn

    async def receive(self, inbound: InboundMessage) -> tuple[Message, bool]:
        """Store the message durably (committed) before anyone acknowledges it."""

        async def store() -> Received:
            async with transaction(self.sessions) as session:
                return await self._record(session, inbound, state=InboundState.RECEIVED)

        received = await _retry_races(inbound, store)
        message, duplicate = received.message, received.duplicate
        if duplicate:
            metrics.DUPLICATES.labels(inbound.channel).inc()
        else:
            metrics.MESSAGES_IN.labels(inbound.channel).inc()
            await self.services.bus.publish("message", message_event(message))
        return message, duplicate

    async def process(self, message_id: int, *, stored: Message | None = None) -> TurnResult:
        """Answer a stored message once; a second call returns the replies recorded the first time.

        `stored` is the row as `receive` returned it, when the caller has it (saves a read).
        """
        if stored is not None and stored.id == message_id:
            conversation_id, text = stored.conversation_id, stored.text.strip()
        else:
            conversation_id, text = await self._peek(message_id)
        async with self._lock(conversation_id):
            # Understand the text before taking the write lock: on SQLite the transaction below
            # serialises every writer, so nothing slow may run inside it that can run outside.
            parsed = await self.services.nlu.parse(text) if text.strip() else None
            for pause in BUSY_RETRY_PAUSES:  # a busy database (pool timeout): again now, not at recovery's next run
                try:
                    return await self._answer_stored(message_id, parsed)
                except (DBAPIError, SQLAlchemyTimeoutError) as exc:
                    log.warning("turn_retry", message_id=message_id, error=str(exc))
                    await asyncio.sleep(pause)
            return await self._answer_stored(message_id, parsed)  # failing again: the recovery job answers it

    async def _answer_stored(self, message_id: int, parsed: ParseResult | None) -> TurnResult:
        async with transaction(self.sessions) as session:
            if not await self._claim(session, message_id):
                return await self._recorded_result(session, message_id)
            message = await session.get_one(Message, message_id)
            turn = await self._load_turn(session, message, parsed)
            handled_by, replies = await self._answer(turn)
        await self._emit(turn, handled_by)
        return TurnResult(
            message_id, message.conversation_id, message.customer_id, handled_by=handled_by, replies=replies
        )

    async def recover(self, older_than: timedelta = timedelta(seconds=30)) -> int:
        """Answer messages stored but never answered (a crash between receive and reply).

        On PostgreSQL conversations are answered side by side (a long outage can leave thousands
        waiting; SQLite has one writer, so there it only adds contention); one conversation's
        messages are answered in the order they arrived."""
        cutoff = self.services.clock() - older_than
        async with self.sessions() as session:
            rows = (
                await session.exec(
                    select(Message.id, Message.conversation_id)
                    .where(Message.state == InboundState.RECEIVED, col(Message.created_at) < cutoff)
                    .order_by(col(Message.id))
                )
            ).all()
        waiting: dict[int, list[int]] = {}
        for message_id, conversation_id in rows:
            assert message_id is not None
            waiting.setdefault(conversation_id, []).append(message_id)
        lanes = asyncio.Semaphore(1 if self.services.settings.is_sqlite else RECOVERY_LANES)

        async def answer_in_order(message_ids: list[int]) -> int:
            async with lanes:
                return sum([await self._recover_one(message_id) for message_id in message_ids])

        async with asyncio.TaskGroup() as group:
            done = [group.create_task(answer_in_order(ids)) for ids in waiting.values()]
        return sum(task.result() for task in done)

    async def _recover_one(self, message_id: int) -> int:
        try:
            result = await self.process(message_id)
        except (DBAPIError, SQLAlchemyTimeoutError) as exc:  # busy or away: the next run tries again
            log.warning("recover_failed", message_id=message_id, error=str(exc))
            return 0
        log.info("recovered_message", message_id=message_id, replies=len(result.replies))
        return 1

    async def _answer(self, turn: Turn, slot: AnswerSlot | None = None) -> tuple[str, list[Reply]]:
        conversation = turn.conversation
        for observer in self.observers:
            await observer.observe(turn)
        _state, _said, outs = await dispatch(turn, self.router)  # the state x kind table (bot.engine.states)
        handled_by = turn.handled_by
        if turn.notes:
            await turn.session.flush()
            for note in turn.notes:
                turn.emit("message", message_event(note))
        replies: list[Reply] = []
        answering = slot is not None and bool(outs) and slot.take()
        pushed = "push" if conversation.channel in self.services.stored_is_delivered else None
        # Replies that miss the HTTP answer wait for it (the channel releases them right after), so
        # they follow the answer instead of overtaking it.
        hold = self.services.hold_seconds.get(conversation.channel, 0.0) if answering else 0.0
        due = self.services.clock() + timedelta(seconds=hold) if hold else None
        for out in outs:
            payload = out.to_payload()
            if answering and replies and not (slot and slot.joinable(replies[0].payload, payload)):
                answering = False  # this one and the rest go through the outbox, in order
            row, outbox = await record_outbound(
                turn.session,
                conversation=conversation,
                text=out.as_text(),
                payload=payload,
                reply_to_id=turn.message.id,
                delivered_via=slot.via if answering and slot else pushed,
                next_attempt_at=due,
                meta=out.meta,
            )
            assert row.id is not None
            replies.append(Reply(row.id, outbox.id, row.text, outbox.payload, in_answer=answering))
            turn.emit("message", message_event(row))
            metrics.MESSAGES_OUT.labels(conversation.channel, Sender.BOT).inc()
        return handled_by, replies

    async def _record(
        self, session: Any, inbound: InboundMessage, state: InboundState = InboundState.HANDLED
    ) -> Received:
        payload = dict(inbound.payload)
        if inbound.event:
            payload["event"] = inbound.event
        return await record_inbound(
            session,
            channel=inbound.channel,
            account=inbound.account,
            external_id=inbound.external_id,
            channel_msg_id=inbound.channel_msg_id,
            kind=inbound.kind,
            text=inbound.text,
            payload=payload,
            unionid=inbound.unionid,
            now=self.services.clock(),
            state=state,
        )

    @staticmethod
    async def _claim(session: Any, message_id: int) -> bool:
        """Mark a stored message handled; False when another turn already did (exactly-once)."""
        claimed = await session.exec(
            update(Message)
            .where(col(Message.id) == message_id, col(Message.state) == InboundState.RECEIVED)
            .values(state=InboundState.HANDLED)
        )
        return bool(claimed.rowcount)

    async def _load_turn(self, session: Any, message: Message, parsed: ParseResult | None) -> Turn:
        if session.bind.dialect.name == "sqlite":  # this transaction holds the database's one write lock
            conversation = await session.get_one(Conversation, message.conversation_id)
        else:  # lock the row and read it fresh: turns of one conversation never interleave
            conversation = await session.get_one(
                Conversation, message.conversation_id, with_for_update=True, populate_existing=True
            )
        customer = await session.get_one(Customer, message.customer_id)  # usually from the identity map
        return Turn(
            inbound=inbound_of(message, conversation),
            message=message,
            customer=customer,
            conversation=conversation,
            session=session,
            services=self.services,
            _parsed=parsed,
        )

    async def _emit(self, turn: Turn, handled_by: str) -> None:
        """After the commit: run what the turn left for then, publish what it emitted.

        Never raises: the answer is committed, and a channel must not take the turn for a failed one
        (a passive reply recorded as delivered would then never go out).
        """
        try:
            for callback in turn.committed:
                callback()
            for topic, data in turn.events:
                await self.services.bus.publish(topic, data)
        except Exception:
            log.exception("turn_side_effect_failed", message_id=turn.message.id)
        metrics.HANDLED_BY.labels(handled_by).inc()

    async def _recorded_result(self, session: Any, message_id: int) -> TurnResult:
        message = await session.get_one(Message, message_id)
        rows = (
            await session.exec(select(Message).where(Message.reply_to_id == message_id).order_by(col(Message.id)))
        ).all()
        replies = [Reply(r.id, None, r.text, r.payload) for r in rows]
        return TurnResult(message_id, message.conversation_id, message.customer_id, True, "recorded", replies)

    async def _peek(self, message_id: int) -> tuple[int, str]:
        """The message's conversation and text, read without a write lock."""
        async with self.sessions() as session:
            message = await session.get_one(Message, message_id)
            return message.conversation_id, message.text.strip()

    def _lock(self, key: int | str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock


async def _retry_races(inbound: InboundMessage, work: Callable[[], Awaitable[T]]) -> T:
    """Concurrent copies of a new customer's first message (WeChat retries with Redis dedup gone) race
    to create the customer/conversation: the loser retries and finds the winner's rows."""
    for _attempt in range(RECEIVE_ATTEMPTS - 1):
        try:
            return await work()
        except DBAPIError as exc:
            if not _race(exc):
                raise
            log.info("receive_race_retry", channel_msg_id=inbound.channel_msg_id, error=type(exc.orig).__name__)
    return await work()


def _identity_key(inbound: InboundMessage) -> str:
    """Turns of one channel identity are taken in order in this process (its conversation is not known yet)."""
    return f"{inbound.channel}:{inbound.account}:{inbound.external_id}"


def inbound_of(message: Message, conversation: Conversation) -> InboundMessage:
    """Rebuild the channel-neutral message from its stored row (used for recovery too)."""
    payload = dict(message.payload)
    event = payload.get("event")
    kind = Kind(message.kind) if message.kind in Kind._value2member_map_ else Kind.UNKNOWN
    return InboundMessage(
        channel=Channel(message.channel),
        account=conversation.app_id,
        external_id=conversation.external_id,
        channel_msg_id=message.channel_msg_id or "",
        kind=kind,
        text=message.text,
        event=event,
        payload=payload,
        sent_at=message.created_at,
    )


def message_event(message: Message) -> dict[str, Any]:
    """The shape of a message on the event bus (console, web-chat push)."""
    return {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "customer_id": message.customer_id,
        "channel": message.channel,
        "direction": message.direction,
        "sender": message.sender,
        "text": message.text,
        "kind": message.kind,
        "image": (message.payload.get("image") or {}).get("name"),  # a photo's stored name (bot.attachments)
        "created_at": message.created_at.isoformat(),
    }
