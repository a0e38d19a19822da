"""`huike user create --role admin`: the first admin comes from the command line."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from sqlmodel import select
from typer.testing import CliRunner

from bot.cli import app as cli
from models import AuditLog, User, UserSession
from scrm.db import SessionFactory
from scrm.users import verify_password


async def huike(database_url: str, *args: str, stdin: str | None = None) -> Any:
    runner = CliRunner()
    env = {"HUIKE_DATABASE_URL": database_url}
    return await asyncio.to_thread(runner.invoke, cli, list(args), input=stdin, env=env)


async def test_create_the_first_admin_then_reset_a_password(database_url: str, db: SessionFactory) -> None:
    made = await huike(database_url, "user", "create", "--username", "root", "--role", "admin", "-p", "first-admin-1")
    assert made.exit_code == 0, made.output
    again = await huike(database_url, "user", "create", "--username", "root", "--role", "admin", "-p", "first-admin-1")
    assert again.exit_code == 1
    short = await huike(database_url, "user", "create", "--username", "tiny", "-p", "short")
    assert short.exit_code == 2
    prompted = await huike(database_url, "user", "create", "-u", "agent1", stdin="typed-secret-1\ntyped-secret-1\n")
    assert prompted.exit_code == 0, prompted.output

    async with db() as session:
        users = {u.username: u for u in (await session.exec(select(User))).all()}
        audit = (await session.exec(select(AuditLog).where(AuditLog.action == "user.create"))).all()
    assert set(users) == {"root", "agent1"}
    assert users["root"].role == "admin" and verify_password(users["root"].password_hash, "first-admin-1")
    assert users["agent1"].role == "agent" and verify_password(users["agent1"].password_hash, "typed-secret-1")
    assert {a.actor for a in audit} == {"cli"}

    reset = await huike(database_url, "user", "set-password", "-u", "agent1", "-p", "another-pass-2")
    assert reset.exit_code == 0, reset.output
    async with db() as session:
        agent = (await session.exec(select(User).where(User.username == "agent1"))).one()
    assert verify_password(agent.password_hash, "another-pass-2")


async def test_skills_are_set_at_creation_and_changed_without_signing_the_user_out(
    database_url: str, db: SessionFactory
) -> None:
    made = await huike(database_url, "user", "create", "-u", "li", "-p", "li-password-1", "--skills", "售后，物流,售后")
    assert made.exit_code == 0, made.output
    async with db() as session:
        li = (await session.exec(select(User).where(User.username == "li"))).one()
        assert li.skills == "售后,物流"
        assert li.id is not None
        session.add(UserSession(id="s-li", user_id=li.id, csrf_token="t", expires_at=datetime(2099, 1, 1, tzinfo=UTC)))
        await session.commit()

    changed = await huike(database_url, "user", "update", "-u", "li", "--skills", "技术、主管", "--max-concurrent", "8")
    assert changed.exit_code == 0, changed.output
    nothing = await huike(database_url, "user", "update", "-u", "li")
    assert nothing.exit_code == 2 and "nothing to change" in nothing.output
    unknown = await huike(database_url, "user", "update", "-u", "nobody", "--skills", "售后")
    assert unknown.exit_code == 1
    async with db() as session:
        li = (await session.exec(select(User).where(User.username == "li"))).one()
        still_signed_in = (await session.exec(select(UserSession).where(UserSession.user_id == li.id))).all()
        audit = (await session.exec(select(AuditLog).where(AuditLog.action == "user.update"))).one()
    assert (li.skills, li.max_concurrent) == ("技术,主管", 8)
    assert len(still_signed_in) == 1  # new skills need no new login
    assert audit.before == {"skills": "售后,物流", "max_concurrent": 5} and audit.after["skills"] == "技术,主管"

    demoted = await huike(database_url, "user", "update", "-u", "li", "--inactive")
    assert demoted.exit_code == 0, demoted.output
    async with db() as session:
        assert (await session.exec(select(UserSession).where(UserSession.user_id == li.id))).all() == []
