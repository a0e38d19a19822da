"""FAQ rows -> NLU documents (and the labelled pairs agents confirmed)."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from typing import Any

from sqlmodel import select

from bot.bus import LocalBus
from models import FaqConfirmation
from nlu import FaqDoc
from scrm.db import SessionFactory
from scrm.faq import list_faqs

FAQ_CHANGED = "faq.changed"
FAQ_SERVING = "faq.serving"  # a worker serves the model trained after the change {"version"}


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


async def announce_change(bus: LocalBus, workers: int, data: dict[str, Any], wait: float = 0.0) -> bool:
    """Tell every worker to retrain; with `wait`, return once all `workers` serve the new model
    (True) or after `wait` seconds (False)."""
    version = uuid.uuid4().hex
    if not wait:
        await bus.publish(FAQ_CHANGED, {**data, "version": version})
        return False
    serving: set[str] = set()
    async with bus.subscribe() as queue:  # subscribed before publishing: no acknowledgement is missed
        await bus.publish(FAQ_CHANGED, {**data, "version": version})
        try:
            async with asyncio.timeout(wait):
                while len(serving) < workers:
                    topic, ack = await queue.get()
                    if topic == FAQ_SERVING and ack.get("version") == version:
                        serving.add(str(ack.get("worker")))
        except TimeoutError:
            return False
    return True


async def load_faq_docs(sessions: SessionFactory) -> tuple[list[FaqDoc], list[tuple[str, int]]]:
    async with sessions() as session:
        rows = await list_faqs(session, enabled_only=True)
        confirmed = (await session.exec(select(FaqConfirmation.text, FaqConfirmation.faq_id))).all()
    docs = [
        FaqDoc(
            id=r.id or 0, question=r.question, similar=tuple(r.similar_questions), answer=r.answer, category=r.category
        )
        for r in rows
    ]
    enabled = {d.id for d in docs}
    pairs = [(text, faq_id) for text, faq_id in confirmed if faq_id in enabled]  # labelled by agents in the console
    return docs, pairs
