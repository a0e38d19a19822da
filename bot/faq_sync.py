"""FAQ rows -> NLU documents (and the labelled pairs agents confirmed)."""

from __future__ import annotations

from sqlmodel import select

from models import FaqConfirmation
from nlu import FaqDoc
from scrm.db import SessionFactory
from scrm.faq import list_faqs

FAQ_CHANGED = "faq.changed"


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
