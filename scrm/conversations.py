"""Human handoff verbs: take over, transfer, hand back to the bot, close, internal notes.

Each verb changes the conversation with a conditional UPDATE (so two agents racing for the same
conversation cannot both win), records what the customer is told through `record_outbound`, and
writes an AuditLog row, all in the caller's transaction. The caller publishes events after commit.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import (
    Conversation,
    ConversationState,
    Direction,
    FaqConfirmation,
    FaqEntry,
    Message,
    OutboxMessage,
    Sender,
    User,
    utcnow,
)
from scrm.audit import Actor, record_audit
from scrm.errors import Conflict, Forbidden, InvalidTransition, NotFound, ValidationFailed
from scrm.interactions import record_outbound

AGENT_JOINED = "您好，人工客服已接入，请问有什么可以帮您？"
TRANSFERRED = "已为您转接另一位客服，请稍候。"
HANDED_BACK = "人工服务已结束，智能客服小慧继续为您服务。"
CLOSED = "本次会话已结束，感谢您的咨询！如有其他问题，随时给我们留言。"

TAKEABLE = (ConversationState.QUEUED, ConversationState.BOT)


async def get_conversation(session: AsyncSession, conversation_id: int) -> Conversation:
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None:
        raise NotFound(f"会话 {conversation_id} 不存在")
    return conversation


async def active_count(session: AsyncSession, agent_id: int) -> int:
    """Conversations an agent owns right now (for the concurrent-conversation cap)."""
    stmt = (
        select(func.count())
        .select_from(Conversation)
        .where(Conversation.agent_id == agent_id, Conversation.state == ConversationState.AGENT)
    )
    return int((await session.exec(stmt)).one())


async def _check_capacity(session: AsyncSession, agent: User) -> None:
    assert agent.id is not None
    if not agent.active:
        raise ValidationFailed(f"客服 {agent.username} 已停用")
    if await active_count(session, agent.id) >= agent.max_concurrent:
        raise Conflict(f"{agent.display_name or agent.username} 已达到同时接待上限（{agent.max_concurrent}）")


async def _system_message(
    session: AsyncSession, conversation: Conversation, text: str
) -> tuple[Message, OutboxMessage]:
    return await record_outbound(session, conversation=conversation, text=text, sender=Sender.SYSTEM)


async def take_over(session: AsyncSession, *, conversation_id: int, agent: User) -> tuple[Conversation, Message]:
    """An agent takes a queued (or bot) conversation; the loser of a race gets Conflict.

    Returns the conversation and the "人工客服已接入" message sent to the customer.
    """
    assert agent.id is not None
    conversation = await get_conversation(session, conversation_id)
    if conversation.state == ConversationState.AGENT:
        raise Conflict("该会话已被其他客服接入" if conversation.agent_id != agent.id else "您已接入该会话")
    if conversation.state not in TAKEABLE:
        raise InvalidTransition("会话已结束，不能接入")
    await _check_capacity(session, agent)
    before = {"state": conversation.state, "agent_id": conversation.agent_id}
    result = await session.exec(  # type: ignore[call-overload]
        update(Conversation)
        .where(col(Conversation.id) == conversation_id, col(Conversation.state).in_(TAKEABLE))
        .values(state=ConversationState.AGENT, agent_id=agent.id, flow=None, flow_state={}, assigned_at=utcnow())
    )
    if result.rowcount != 1:
        raise Conflict("该会话已被其他客服接入")
    await session.refresh(conversation)
    message, _ = await _system_message(session, conversation, AGENT_JOINED)
    record_audit(
        session,
        actor=actor_of(agent),
        action="conversation.take_over",
        object_type="conversation",
        object_id=conversation_id,
        before=before,
        after={"state": ConversationState.AGENT, "agent_id": agent.id},
    )
    return conversation, message


def _require_owner(conversation: Conversation, user: User, *, supervisor_ok: bool = True) -> None:
    if conversation.state != ConversationState.AGENT:
        raise InvalidTransition("会话当前不在人工服务中")
    if conversation.agent_id == user.id:
        return
    if supervisor_ok and user.role in ("supervisor", "admin"):
        return
    raise Forbidden("该会话由其他客服接待")


async def agent_reply(
    session: AsyncSession, *, conversation_id: int, agent: User, text: str
) -> tuple[Message, OutboxMessage]:
    """The agent's reply to the customer, delivered on the conversation's channel through the outbox."""
    text = text.strip()
    if not text:
        raise ValidationFailed("回复内容不能为空")
    conversation = await get_conversation(session, conversation_id)
    _require_owner(conversation, agent)
    return await record_outbound(session, conversation=conversation, text=text, sender=Sender.AGENT, agent_id=agent.id)


async def add_note(session: AsyncSession, *, conversation_id: int, agent: User, text: str) -> Message:
    """An internal note: stored with the conversation, never queued for the customer."""
    text = text.strip()
    if not text:
        raise ValidationFailed("备注内容不能为空")
    conversation = await get_conversation(session, conversation_id)
    note = Message(
        conversation_id=conversation_id,
        customer_id=conversation.customer_id,
        channel=conversation.channel,
        direction=Direction.OUT,
        sender=Sender.NOTE,
        agent_id=agent.id,
        text=text,
    )
    session.add(note)
    await session.flush()
    return note


async def transfer(
    session: AsyncSession, *, conversation_id: int, by: User, to_agent_id: int
) -> tuple[Conversation, Message]:
    """Hand an owned conversation to another agent (who must be active and below their cap)."""
    conversation = await get_conversation(session, conversation_id)
    _require_owner(conversation, by)
    target = await session.get(User, to_agent_id)
    if target is None:
        raise NotFound(f"客服 {to_agent_id} 不存在")
    if target.id == conversation.agent_id:
        raise ValidationFailed("会话已由该客服接待")
    await _check_capacity(session, target)
    before = {"agent_id": conversation.agent_id}
    result = await session.exec(  # type: ignore[call-overload]
        update(Conversation)
        .where(
            col(Conversation.id) == conversation_id,
            col(Conversation.state) == ConversationState.AGENT,
            col(Conversation.agent_id) == conversation.agent_id,
        )
        .values(agent_id=target.id)
    )
    if result.rowcount != 1:
        raise Conflict("会话状态已变化，请刷新后重试")
    await session.refresh(conversation)
    message, _ = await _system_message(session, conversation, TRANSFERRED)
    record_audit(
        session,
        actor=actor_of(by),
        action="conversation.transfer",
        object_type="conversation",
        object_id=conversation_id,
        before=before,
        after={"agent_id": target.id},
    )
    return conversation, message


async def hand_back(session: AsyncSession, *, conversation_id: int, by: User) -> tuple[Conversation, Message]:
    """The bot answers again from the next customer message."""
    conversation = await get_conversation(session, conversation_id)
    if conversation.state != ConversationState.QUEUED:  # a queued one may be released by any staff member
        _require_owner(conversation, by)
    before = {"state": conversation.state, "agent_id": conversation.agent_id}
    await _set_state(session, conversation, ConversationState.BOT, expected=conversation.state)
    conversation.fallback_count = 0
    message, _ = await _system_message(session, conversation, HANDED_BACK)
    record_audit(
        session,
        actor=actor_of(by),
        action="conversation.hand_back",
        object_type="conversation",
        object_id=conversation_id,
        before=before,
        after={"state": ConversationState.BOT},
    )
    return conversation, message


async def close_conversation(
    session: AsyncSession, *, conversation_id: int, by: User
) -> tuple[Conversation, Message | None]:
    """End the conversation; the customer's next message opens a new one."""
    conversation = await get_conversation(session, conversation_id)
    if conversation.state == ConversationState.CLOSED:
        raise InvalidTransition("会话已结束")
    if conversation.state == ConversationState.AGENT:
        _require_owner(conversation, by)
    before = {"state": conversation.state, "agent_id": conversation.agent_id}
    message, _ = await _system_message(session, conversation, CLOSED)
    await _set_state(session, conversation, ConversationState.CLOSED, expected=conversation.state)
    conversation.closed_at = utcnow()
    record_audit(
        session,
        actor=actor_of(by),
        action="conversation.close",
        object_type="conversation",
        object_id=conversation_id,
        before=before,
        after={"state": ConversationState.CLOSED},
    )
    return conversation, message


async def _set_state(
    session: AsyncSession, conversation: Conversation, state: ConversationState, *, expected: ConversationState
) -> None:
    # queue_reason and queued_at stay: why a human was needed and when the customer asked (the dashboard's
    # handoff rate and first response count from them).
    values: dict[str, Any] = {"state": state, "agent_id": None}
    result = await session.exec(  # type: ignore[call-overload]
        update(Conversation)
        .where(col(Conversation.id) == conversation.id, col(Conversation.state) == expected)
        .values(**values)
    )
    if result.rowcount != 1:
        raise Conflict("会话状态已变化，请刷新后重试")
    await session.refresh(conversation)


async def confirm_faq(
    session: AsyncSession, *, conversation_id: int, message_id: int, faq_id: int, agent: User
) -> FaqConfirmation:
    """An agent says "this FAQ answers that customer question": a labelled pair for the NLU."""
    message = await session.get(Message, message_id)
    if message is None or message.conversation_id != conversation_id or message.direction != Direction.IN:
        raise NotFound("找不到该客户消息")
    if await session.get(FaqEntry, faq_id) is None:
        raise NotFound(f"FAQ {faq_id} 不存在")
    row = FaqConfirmation(text=message.text, faq_id=faq_id, message_id=message_id, agent_id=agent.id)
    session.add(row)
    await session.flush()
    return row


def actor_of(user: User) -> Actor:
    return Actor(id=user.id, name=user.username, role=str(user.role))
