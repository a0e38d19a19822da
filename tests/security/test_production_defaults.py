"""Production refuses what is published: the demo admin, its password and weak secret keys (review issue 15)."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlmodel import select
from typer.testing import CliRunner

from bot.cli import app as cli
from bot.keys import db_key
from config.settings import DEMO_ADMIN_PASSWORD, DEV_SECRET, Settings
from models import Role, User, UserCreate
from scrm.audit import Actor
from scrm.db import SessionFactory, transaction
from scrm.users import create_user
from tests.conftest import make_settings

STRONG_KEY = secrets.token_urlsafe(32)


async def huike(env: dict[str, str], *args: str) -> Any:
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=env)


async def test_seed_demo_refuses_in_production_with_one_line(database_url: str, db: SessionFactory) -> None:
    env = {"HUIKE_DATABASE_URL": database_url, "HUIKE_ENV": "production", "HUIKE_SECRET_KEY": STRONG_KEY}
    result = await huike(env, "seed-demo")
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "seed-demo refused" in result.output
    assert "huike-admin" not in result.output
    async with db() as session:
        assert (await session.exec(select(User))).all() == []

    dev = await huike({"HUIKE_DATABASE_URL": database_url, "HUIKE_ENV": "dev"}, "seed-demo")  # `make run` is the demo
    assert dev.exit_code == 0, dev.output
    async with db() as session:
        assert [u.username for u in (await session.exec(select(User))).all()] == ["admin"]


async def test_cli_refuses_to_set_the_demo_password_in_production(database_url: str, db: SessionFactory) -> None:
    env = {"HUIKE_DATABASE_URL": database_url, "HUIKE_ENV": "production", "HUIKE_SECRET_KEY": STRONG_KEY}
    made = await huike(env, "user", "create", "-u", "root", "--role", "admin", "-p", DEMO_ADMIN_PASSWORD)
    assert made.exit_code == 2 and "default password" in made.output
    async with db() as session:
        assert (await session.exec(select(User))).all() == []


async def _app_with_demo_admin(settings: Settings, aiohttp_client: Any) -> Any:
    from bot.app import create_app

    client = await aiohttp_client(create_app(settings))
    async with transaction(client.app[db_key]) as session:  # seeded while the database was a dev demo
        await create_user(session, data=UserCreate(username="admin", password=DEMO_ADMIN_PASSWORD, role=Role.ADMIN),
                          actor=Actor.system())  # fmt: skip
        await create_user(session, data=UserCreate(username="ops", password="a-real-password-9", role=Role.ADMIN),
                          actor=Actor.system())  # fmt: skip
    return client


async def test_production_login_refuses_an_account_with_the_demo_password(
    database_url: str, tmp_path: Path, db: SessionFactory, seeded_faq: int, aiohttp_client: Any
) -> None:
    settings = make_settings(database_url, tmp_path, env="production", secret_key=STRONG_KEY)
    client = await _app_with_demo_admin(settings, aiohttp_client)
    resp = await client.post("/api/v1/auth/login", json={"username": "admin", "password": DEMO_ADMIN_PASSWORD})
    assert resp.status == 403
    body = await resp.json()
    assert body["code"] == "default_password" and "huike user set-password" in body["message"]
    assert "huike_session" not in resp.cookies
    assert (await client.get("/api/v1/admin/users")).status == 401  # no session was started
    ok = await client.post("/api/v1/auth/login", json={"username": "ops", "password": "a-real-password-9"})
    assert ok.status == 200


async def test_dev_login_with_the_demo_password_still_works(
    settings: Settings, seeded_faq: int, aiohttp_client: Any
) -> None:
    client = await _app_with_demo_admin(settings, aiohttp_client)
    resp = await client.post("/api/v1/auth/login", json={"username": "admin", "password": DEMO_ADMIN_PASSWORD})
    assert resp.status == 200


@pytest.mark.parametrize(
    "key",
    ["x", DEV_SECRET, DEV_SECRET + "-1234567890", "a" * 64, "abcd" * 16, "0123456789" * 4, "password" * 5, ""],
)
def test_production_refuses_a_weak_secret_key(key: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="HUIKE_SECRET_KEY must be at least 32 random characters"):
        Settings(_env_file=None, env="production", secret_key=key, data_dir=tmp_path)  # type: ignore[call-arg]


@pytest.mark.parametrize("key", [secrets.token_urlsafe(32), secrets.token_hex(32), "Kp7#vQ2m!Xz9@Lw4$Rb8^Tn6&Yc3*Hd5"])
def test_production_accepts_a_random_secret_key(key: str, tmp_path: Path) -> None:
    assert Settings(_env_file=None, env="production", secret_key=key, data_dir=tmp_path).is_production  # type: ignore[call-arg]


async def test_weak_key_stops_the_cli_with_one_clear_line(database_url: str) -> None:
    result = await huike({"HUIKE_DATABASE_URL": database_url, "HUIKE_ENV": "production", "HUIKE_SECRET_KEY": "x"},
                         "seed-demo")  # fmt: skip
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "HUIKE_SECRET_KEY must be at least 32 random" in result.output
