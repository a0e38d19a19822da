"""Who is really there: presence comes from the console connection, not only from a button.

The console WebSocket beats (`touch`) every few seconds. A staff member counts as present when their
presence is 在线 and their console, if they ever opened one, beat within the grace period; `expire`
(scheduled) marks people whose consoles all went away (browser closed, laptop asleep) offline, so the
presence flag itself is true a moment later too (ticket auto-assignment reads the flag). Transfers and
the queue's wait estimate use `present_filter`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Conversation, ConversationState, Presence, Role, User

STAFF_ROLES = (Role.AGENT, Role.SUPERVISOR, Role.ADMIN)


@dataclass(frozen=True, slots=True)
class Present:
    user: User
    active: int  # conversations they own now

    @property
    def free(self) -> int:
        return self.user.max_concurrent - self.active


def present_filter(now: datetime, grace: timedelta) -> sa.ColumnElement[bool]:
    return sa.and_(
        col(User.active) == True,  # noqa: E712
        col(User.presence) == Presence.ONLINE,
        sa.or_(col(User.last_seen_at).is_(None), col(User.last_seen_at) >= now - grace),
    )


async def is_present(session: AsyncSession, user_id: int, *, now: datetime, grace: timedelta) -> bool:
    found = await session.exec(select(User.id).where(User.id == user_id, present_filter(now, grace)))
    return found.first() is not None


async def present_staff(
    session: AsyncSession, *, now: datetime, grace: timedelta, roles: tuple[Role, ...] = STAFF_ROLES
) -> list[Present]:
    users = (await session.exec(select(User).where(present_filter(now, grace), col(User.role).in_(roles)))).all()
    loads = dict(
        (
            await session.exec(
                select(Conversation.agent_id, sa.func.count())
                .where(Conversation.state == ConversationState.AGENT)
                .group_by(col(Conversation.agent_id))
            )
        ).all()
    )
    return [Present(u, int(loads.get(u.id, 0))) for u in users]


async def touch(session: AsyncSession, user_id: int, *, now: datetime) -> None:
    """A console beat: the person is there."""
    await session.exec(update(User).where(col(User.id) == user_id).values(last_seen_at=now))  # type: ignore[call-overload]


async def expire(session: AsyncSession, *, now: datetime, grace: timedelta) -> list[int]:
    """Staff marked present whose consoles have been silent past the grace period go offline."""
    stale = col(User.last_seen_at) < now - grace  # never had a console (None): the flag stays as set
    ids = list((await session.exec(select(User.id).where(col(User.presence) != Presence.OFFLINE, stale))).all())
    if ids:
        await session.exec(  # type: ignore[call-overload]
            update(User).where(col(User.id).in_(ids), stale).values(presence=Presence.OFFLINE)
        )
    return [i for i in ids if i is not None]
