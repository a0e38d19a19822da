"""Audit rows: every admin action records who did what, with before/after, in the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from models import AuditLog


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a staff user, or the system/bot/CLI (id None)."""

    id: int | None
    name: str
    role: str = "system"

    @classmethod
    def system(cls, name: str = "system") -> Actor:
        return cls(id=None, name=name)


def record_audit(
    session: AsyncSession,
    *,
    actor: Actor,
    action: str,
    object_type: str,
    object_id: object = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditLog:
    row = AuditLog(
        actor_id=actor.id,
        actor=actor.name,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        before=_jsonable(before or {}),
        after=_jsonable(after or {}),
    )
    session.add(row)
    return row


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    """Dates and enums become strings so the row stores on both SQLite and PostgreSQL."""
    import json

    return dict(json.loads(json.dumps(data, default=str, ensure_ascii=False)))
