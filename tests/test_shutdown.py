"""Background loops end when the app shuts down, whatever they were doing at that instant."""

from __future__ import annotations

import asyncio

from bot.outbox import Outbox


async def test_outbox_stops_when_cancelled_as_it_is_woken() -> None:
    # A commit pokes the worker in the same tick as shutdown cancels it: the cancel must win.
    # (On Python 3.11 `asyncio.wait_for` returned the wake-up and dropped the cancel; shutdown hung.)
    outbox = Outbox(poll_interval=3600)  # no deliverers: each cycle finds nothing and goes back to sleep
    await outbox.start()
    await asyncio.sleep(0.05)  # asleep, waiting for a poke
    outbox.poke()
    closing = asyncio.create_task(outbox.close())
    done, _ = await asyncio.wait({closing}, timeout=5)
    assert closing in done, "the outbox loop swallowed its cancellation"
    assert outbox._task is not None and outbox._task.cancelled()
