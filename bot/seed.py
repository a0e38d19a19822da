"""Demo data: the seed FAQ and a demo admin, loaded idempotently."""

from __future__ import annotations

from pathlib import Path

import yaml
from sqlmodel import select

from config.settings import Settings
from models import FaqEntryCreate, Role, User
from scrm.audit import Actor
from scrm.db import make_engine, make_session_factory, transaction
from scrm.faq import upsert_faq_by_question
from scrm.users import hash_password

DEMO_FAQ = Path(__file__).resolve().parent.parent / "config" / "demo_faq.yml"


def demo_faq_entries(path: Path = DEMO_FAQ) -> list[FaqEntryCreate]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [
        FaqEntryCreate(
            question=e["question"], similar_questions=list(e.get("similar", [])), answer=e["answer"],
            category=e.get("category", ""),
        )
        for e in data["entries"]
    ]


class DemoRefused(Exception):
    """The demo admin's password is published: never seeded in production."""


async def seed_demo(settings: Settings) -> dict[str, int]:
    if settings.is_production:
        raise DemoRefused(
            "HUIKE_ENV=production: the demo admin has a published password and is not created; "
            "create the first admin with `huike user create --username admin --role admin`"
        )
    engine = make_engine(settings.database_url)
    actor = Actor.system("seed-demo")
    created = 0
    try:
        async with transaction(make_session_factory(engine)) as session:
            for entry in demo_faq_entries():
                _row, was_created = await upsert_faq_by_question(session, data=entry, actor=actor)
                created += was_created
            admin = (await session.exec(select(User).where(User.username == settings.demo_admin_username))).first()
            if admin is None:
                session.add(
                    User(
                        username=settings.demo_admin_username,
                        display_name="演示管理员",
                        role=Role.ADMIN,
                        password_hash=hash_password(settings.demo_admin_password.get_secret_value()),
                    )
                )
    finally:
        await engine.dispose()
    return {"faq_created": created, "faq_total": len(demo_faq_entries())}
