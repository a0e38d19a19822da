"""SCRM work that follows a customer's message but need not hold up the reply.

Re-evaluating every tag rule and marking care messages replied cost more than the rest of a turn's
writes together. Done inside the turn they would hold the database's write lock (SQLite) for every
message; done here they run shortly after, for everyone who wrote meanwhile, in one transaction.
Tags are derived data: a batch lost to a crash is repaired by the next message or the scheduled
rule run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime

import structlog

from models import utcnow
from scrm import care, tags
from scrm.db import SessionFactory, transaction

log = structlog.get_logger(__name__)


class Followups:
    def __init__(self, sessions: SessionFactory, *, delay: float = 0.2, clock: Callable[[], datetime] = utcnow) -> None:
        self.sessions = sessions
        self.delay = delay  # gather the customers of this long into one batch
        self.clock = clock
        self._pending: set[int] = set()
        self._flushing = asyncio.Lock()  # one batch at a time: a flush returns when what was noted is done
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def note(self, customer_id: int) -> None:
        """This customer's message is committed: re-tag them soon."""
        self._pending.add(customer_id)
        self._wakeup.set()

    async def flush(self) -> int:
        """Process everyone noted so far; returns how many customers. On failure they stay pending."""
        async with self._flushing:
            batch, self._pending = self._pending, set()
            if not batch:
                return 0
            try:
                now = self.clock()
                async with transaction(self.sessions) as session:
                    await tags.retag_customers(session, customer_ids=batch, now=now)
                    await care.mark_replied(session, customer_ids=batch, now=now)
            except BaseException:
                self._pending |= batch
                raise
            return len(batch)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="followups")

    async def close(self) -> None:
        """Stop the loop, then process what is still pending (best effort: the scheduled run repairs)."""
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.flush()

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            await asyncio.sleep(self.delay)
            self._wakeup.clear()
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database away: keep the customers, try again later
                log.warning("followups_failed", customers=len(self._pending), error=str(exc))
                await asyncio.sleep(1.0)
                self._wakeup.set()
