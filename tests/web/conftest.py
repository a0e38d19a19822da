"""Helpers for the console/admin API tests: staff sign-in on separate cookie jars, visitors."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from sqlmodel import col, select

from bot.keys import db_key
from models import Conversation, Message, OutboxMessage, User, UserCreate
from scrm.audit import Actor
from scrm.db import transaction
from scrm.users import create_user

PASSWORD = "secret-pass-1"


async def make_user(client: Any, role: str, *, username: str | None = None, **extra: Any) -> User:
    username = username or f"{role}-{uuid.uuid4().hex[:6]}"
    async with transaction(client.app[db_key]) as session:
        return await create_user(
            session, data=UserCreate(username=username, password=PASSWORD, role=role, **extra), actor=Actor.system()
        )


async def sign_in(client: Any, username: str, password: str = PASSWORD) -> dict[str, str]:
    resp = await client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert resp.status == 200, await resp.text()
    return {"X-CSRF-Token": (await resp.json())["csrf_token"]}


class Staff:
    """A signed-in staff member with their own cookie jar on the shared test server."""

    def __init__(self, http: Any, user: User, headers: dict[str, str]) -> None:
        self.http, self.user, self.headers = http, user, headers

    @property
    def id(self) -> int:
        assert self.user.id is not None
        return self.user.id

    async def get(self, path: str) -> Any:
        return await self.http.get("/api/v1" + path)

    async def post(self, path: str, json: Any = None, **kw: Any) -> Any:
        return await self.http.post("/api/v1" + path, json=json, headers=self.headers, **kw)

    async def put(self, path: str, json: Any = None) -> Any:
        return await self.http.put("/api/v1" + path, json=json, headers=self.headers)

    async def delete(self, path: str) -> Any:
        return await self.http.delete("/api/v1" + path, headers=self.headers)


class Browser:
    """Another user agent on the same test server: its own cookie jar, relative paths like TestClient."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    def _url(self, path: str) -> Any:
        return self.server.make_url(path)

    async def get(self, path: str, **kw: Any) -> aiohttp.ClientResponse:
        return await self.session.get(self._url(path), **kw)

    async def post(self, path: str, **kw: Any) -> aiohttp.ClientResponse:
        return await self.session.post(self._url(path), **kw)

    async def put(self, path: str, **kw: Any) -> aiohttp.ClientResponse:
        return await self.session.put(self._url(path), **kw)

    async def delete(self, path: str, **kw: Any) -> aiohttp.ClientResponse:
        return await self.session.delete(self._url(path), **kw)

    async def ws_connect(self, path: str, **kw: Any) -> aiohttp.ClientWebSocketResponse:
        return await self.session.ws_connect(self._url(path), **kw)

    async def close(self) -> None:
        await self.session.close()


@pytest.fixture
async def browsers() -> AsyncIterator[Callable[[Any], Browser]]:
    """`browsers(client)`: a fresh cookie jar against that client's server (closed after the test)."""
    opened: list[Browser] = []

    def make(client: Any) -> Browser:
        browser = Browser(client.server)
        opened.append(browser)
        return browser

    yield make
    for browser in opened:
        await browser.close()


@pytest.fixture
async def staff(client: Any, browsers: Any) -> Callable[..., Awaitable[Staff]]:
    """`await staff("agent", max_concurrent=2)`: a new user of that role, signed in on its own cookie jar."""

    async def make(role: str, **extra: Any) -> Staff:
        user = await make_user(client, role, **extra)
        http = browsers(client)
        headers = await sign_in(http, user.username)
        return Staff(http, user, headers)

    return make


@pytest.fixture
async def visitor(client: Any, browsers: Any) -> Callable[[], Awaitable[Visitor]]:
    async def make() -> Visitor:
        return Visitor(browsers(client))

    return make


class Visitor:
    """A web-chat visitor with their own cookie (one customer)."""

    def __init__(self, http: Any) -> None:
        self.http = http
        self.n = 0

    async def says(self, text: str) -> dict[str, Any]:
        self.n += 1
        resp = await self.http.post("/api/v1/webchat/messages", json={"text": text, "client_msg_id": f"m{self.n}"})
        assert resp.status == 201, await resp.text()
        return dict(await resp.json())

    async def history(self) -> list[dict[str, Any]]:
        resp = await self.http.get("/api/v1/webchat/messages?after=0")
        return list((await resp.json())["messages"])


async def rows(client: Any, model: Any, *where: Any) -> list[Any]:
    async with client.app[db_key]() as session:
        return list((await session.exec(select(model).where(*where).order_by(col(model.id)))).all())


async def conversation_of(client: Any, message_id: int) -> Conversation:
    async with client.app[db_key]() as session:
        message = await session.get_one(Message, message_id)
        return await session.get_one(Conversation, message.conversation_id)


async def outbox_for(client: Any, message_id: int) -> list[OutboxMessage]:
    return await rows(client, OutboxMessage, OutboxMessage.message_id == message_id)
