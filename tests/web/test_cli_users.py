"""`huike user create --role admin`: the first admin comes from the command line."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlmodel import select
from typer.testing import CliRunner

from bot.cli import app as cli
from models import AuditLog, User
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
