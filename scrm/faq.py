"""FAQ verbs: every change is audited; callers retrain the NLU after commit."""

from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import FaqConfirmation, FaqEntry, FaqEntryCreate, FaqEntryUpdate, utcnow
from scrm.audit import Actor, record_audit
from scrm.errors import Conflict, NotFound


async def list_faqs(
    session: AsyncSession, *, enabled_only: bool = False, query: str = "", category: str = ""
) -> list[FaqEntry]:
    stmt = select(FaqEntry).order_by(col(FaqEntry.id))
    if enabled_only:
        stmt = stmt.where(FaqEntry.enabled == True)  # noqa: E712
    if category:
        stmt = stmt.where(FaqEntry.category == category)
    if query:
        like = f"%{query}%"
        stmt = stmt.where(col(FaqEntry.question).like(like) | col(FaqEntry.answer).like(like))
    return list((await session.exec(stmt)).all())


async def get_faq(session: AsyncSession, faq_id: int) -> FaqEntry:
    faq = await session.get(FaqEntry, faq_id)
    if faq is None:
        raise NotFound(f"FAQ {faq_id} 不存在")
    return faq


async def create_faq(session: AsyncSession, *, data: FaqEntryCreate, actor: Actor) -> FaqEntry:
    faq = FaqEntry.model_validate(data)
    session.add(faq)
    await session.flush()
    record_audit(
        session, actor=actor, action="faq.create", object_type="faq", object_id=faq.id, after=data.model_dump()
    )
    return faq


async def update_faq(session: AsyncSession, *, faq_id: int, data: FaqEntryUpdate, actor: Actor) -> FaqEntry:
    faq = await get_faq(session, faq_id)
    changes = data.model_dump(exclude_unset=True, exclude_none=True)  # null: leave as is (every column is NOT NULL)
    before = {k: getattr(faq, k) for k in changes}
    for key, value in changes.items():
        setattr(faq, key, value)
    faq.updated_at = utcnow()
    record_audit(
        session, actor=actor, action="faq.update", object_type="faq", object_id=faq_id, before=before, after=changes
    )
    return faq


async def delete_faq(session: AsyncSession, *, faq_id: int, actor: Actor) -> None:
    faq = await get_faq(session, faq_id)
    if (await session.exec(select(FaqConfirmation.id).where(FaqConfirmation.faq_id == faq_id).limit(1))).first():
        raise Conflict("客服已用这条问答标注过客户问题（训练数据），不能删除，请改为停用")
    before = faq.model_dump(include={"question", "answer", "category"})
    await session.delete(faq)
    record_audit(session, actor=actor, action="faq.delete", object_type="faq", object_id=faq_id, before=before)


async def upsert_faq_by_question(session: AsyncSession, *, data: FaqEntryCreate, actor: Actor) -> tuple[FaqEntry, bool]:
    """Idempotent import: the question text is the natural key. Returns (entry, created)."""
    existing = (await session.exec(select(FaqEntry).where(FaqEntry.question == data.question))).first()
    if existing is None:
        return await create_faq(session, data=data, actor=actor), True
    update = FaqEntryUpdate(**data.model_dump())
    if any(getattr(existing, k) != v for k, v in update.model_dump(exclude_unset=True).items()):
        await update_faq(session, faq_id=existing.id or 0, data=update, actor=actor)
    return existing, False
