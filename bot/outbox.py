"""Outbox worker: delivers recorded outbound messages through their channel, with retries.

Rows are claimed with a lease (`locked_until`) so two workers never send the same row;
a worker that dies mid-send loses its lease and the row is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import or_, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from sqlmodel import col, select

from bot import metrics
from models import OutboxMessage, OutboxStatus, aware, utcnow
from scrm.db import SessionFactory, transaction

log = structlog.get_logger(__name__)
Deliverer = Callable[[OutboxMessage], Awaitable[str | None]]  # returns how it was delivered ("api" …)

LEASE = timedelta(seconds=60)
LEASE_MARGIN = timedelta(seconds=10)  # a send's outcome is written this long before the row may be taken again
MAX_ATTEMPTS = 8


class RetryLater(Exception):
    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.reason, self.delay = reason, delay


class GiveUp(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def backoff(attempts: int, base: float = 1.0, cap: float = 300.0) -> float:
    """Exponential backoff with full jitter."""
    return random.uniform(0, min(cap, base * 2**attempts))


class Outbox:
    def __init__(self, sessions: SessionFactory | None = None, *, poll_interval: float = 0.5) -> None:
        self.sessions: SessionFactory = sessions  # type: ignore[assignment]  # set when the database is up
        self.poll_interval = poll_interval
        self.deliverers: dict[str, Deliverer] = {}
        self.stored_is_delivered: set[str] = set()  # channels whose customers pull what is stored
        # Seconds a new row waits before the worker may take it: a channel that can answer in the
        # HTTP response itself (WeChat's passive reply) claims it meanwhile, or releases it.
        self.hold_seconds: dict[str, float] = {}
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def register(
        self, channel: str, deliver: Deliverer, *, stored_is_delivered: bool = False, hold_seconds: float = 0.0
    ) -> None:
        self.deliverers[channel] = deliver
        if stored_is_delivered:
            self.stored_is_delivered.add(channel)
        if hold_seconds > 0:
            self.hold_seconds[channel] = hold_seconds

    async def release(self, outbox_ids: list[int]) -> None:
        """Held rows nobody claimed become due now (the HTTP answer went out without them)."""
        if not outbox_ids:
            return  # nothing new is due: no wake-up, no poll
        async with transaction(self.sessions) as session:
            await session.exec(  # type: ignore[call-overload]
                update(OutboxMessage)
                .where(col(OutboxMessage.id).in_(outbox_ids), col(OutboxMessage.status) == OutboxStatus.PENDING)
                .values(next_attempt_at=utcnow())
            )
        self.poke()

    def poke(self) -> None:
        """New rows were committed: look now instead of at the next poll."""
        self._wakeup.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox")

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                while await self.run_once():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database away: keep the loop alive and try again
                log.warning("outbox_cycle_failed", error=str(exc))
            self._wakeup.clear()
            # asyncio.timeout, not wait_for: 3.11's wait_for drops a cancel that lands as the event fires,
            # and this loop would then outlive the app's shutdown.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await self._wakeup.wait()

    async def run_once(self, limit: int = 50) -> int:
        """Deliver due rows once; returns how many were attempted."""
        rows = await self._claim(limit)
        outcomes = await asyncio.gather(*(self._deliver(row) for row in rows), return_exceptions=True)
        for outcome in outcomes:  # every delivery has ended, failed or not, before the cycle reports one
            if isinstance(outcome, BaseException):
                raise outcome
        return len(rows)

    async def _claim(self, limit: int) -> list[OutboxMessage]:
        now = utcnow()
        channels = list(self.deliverers)
        if not channels:
            return []
        async with self.sessions() as session:  # a plain read first: idle polls take no write lock
            anything_due = (await session.exec(self._due(channels, now).limit(1))).first()
        if anything_due is None:
            return []
        async with transaction(self.sessions) as session:
            due = self._due(channels, now).limit(limit)
            if session.bind.dialect.name == "postgresql":  # type: ignore[union-attr]
                due = due.with_for_update(skip_locked=True)
            ids = list((await session.exec(due)).all())
            if not ids:
                return []
            await session.exec(  # type: ignore[call-overload]
                update(OutboxMessage)
                .where(col(OutboxMessage.id).in_(ids))
                .values(status=OutboxStatus.SENDING, locked_until=now + LEASE)
            )
            rows = (await session.exec(select(OutboxMessage).where(col(OutboxMessage.id).in_(ids)))).all()
            return list(rows)

    @staticmethod
    def _due(channels: list[str], now: datetime) -> Any:
        return (
            select(OutboxMessage.id)
            .where(
                col(OutboxMessage.channel).in_(channels),
                col(OutboxMessage.status).in_((OutboxStatus.PENDING, OutboxStatus.SENDING)),
                col(OutboxMessage.next_attempt_at) <= now,
                or_(col(OutboxMessage.locked_until).is_(None), col(OutboxMessage.locked_until) < now),
            )
            .order_by(col(OutboxMessage.id))
        )

    async def _deliver(self, row: OutboxMessage) -> None:
        values: dict[str, object]
        try:
            via = await self.deliverers[row.channel](row)
            values = {"status": OutboxStatus.SENT, "sent_at": utcnow(), "delivered_via": via or "api"}
            result = "sent"
        except RetryLater as exc:
            values = self._retry_values(row, exc.reason, exc.delay)
            result = "retry" if values["status"] == OutboxStatus.PENDING else "failed"
        except GiveUp as exc:
            values = {"status": OutboxStatus.FAILED, "last_error": exc.reason[:500]}
            result = "failed"
        except Exception as exc:  # a bug or unexpected error: retry, and say so in the row
            log.exception("outbox_deliver_error", outbox_id=row.id)
            values = self._retry_values(row, f"{type(exc).__name__}: {exc}", None)
            result = "error"
        metrics.OUTBOX_DELIVERIES.labels(row.channel, result).inc()
        await self._record_outcome(row, values)

    async def _record_outcome(self, row: OutboxMessage, values: dict[str, object]) -> None:
        """Write what the send did, retrying while the lease lasts.

        A message already handed to WeChat whose outcome is not recorded would be sent again once
        its lease runs out, so a busy or briefly unreachable database (pool timeout, restart) must
        not end this step; only a database away for longer than the lease can.
        """
        lease_ends = aware(row.locked_until) if row.locked_until else utcnow() + LEASE
        for attempt in itertools.count():
            try:
                async with transaction(self.sessions) as session:
                    await session.exec(  # type: ignore[call-overload]
                        update(OutboxMessage)
                        .where(col(OutboxMessage.id) == row.id, col(OutboxMessage.status) == OutboxStatus.SENDING)
                        .values(attempts=row.attempts + 1, locked_until=None, **values)
                    )
                return
            except (DBAPIError, SQLAlchemyTimeoutError, OSError) as exc:
                pause = min(0.2 * 2**attempt, 5.0)
                if utcnow() + timedelta(seconds=pause) > lease_ends - LEASE_MARGIN:
                    log.error("outbox_outcome_lost", outbox_id=row.id, status=values.get("status"), error=str(exc))
                    raise
                log.warning("outbox_outcome_retry", outbox_id=row.id, error=str(exc))
                await asyncio.sleep(pause)

    @staticmethod
    def _retry_values(row: OutboxMessage, reason: str, delay: float | None) -> dict[str, object]:
        if row.attempts + 1 >= MAX_ATTEMPTS:
            return {"status": OutboxStatus.FAILED, "last_error": f"gave up after {row.attempts + 1}: {reason}"[:500]}
        wait = delay if delay is not None else backoff(row.attempts)
        return {
            "status": OutboxStatus.PENDING,
            "last_error": reason[:500],
            "next_attempt_at": utcnow() + timedelta(seconds=wait),
        }
