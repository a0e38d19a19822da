"""Login, logout (here or everywhere), "who am I" and password change for staff."""

from __future__ import annotations

import asyncio

from aiohttp import web
from pydantic import BaseModel, Field
from sqlalchemy import update
from sqlmodel import col, select

from bot.keys import db_key
from bot.web import auth
from bot.web.api import PUBLIC, STAFF, ApiRouter, json_response
from bot.web.auth import (
    SESSION_COOKIE,
    authenticate,
    current_session,
    end_sessions,
    hash_password,
    start_session,
    verify_password,
)
from models import Presence, User, UserRead, UserSession
from scrm.audit import Actor, record_audit
from scrm.db import transaction

router = ApiRouter("auth")


class LoginBody(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class LoginResult(BaseModel):
    user: UserRead
    csrf_token: str


class LogoutBody(BaseModel):
    everywhere: bool = False


class PasswordBody(BaseModel):
    old_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=8, max_length=128)


@router.post("/auth/login", roles=PUBLIC, body=LoginBody, response=LoginResult)
async def login(request: web.Request, user: None, body: LoginBody) -> web.StreamResponse:
    """Sign in with username and password; sets a fresh session cookie and returns the CSRF token."""
    found = await authenticate(request, body.username, body.password)
    response = json_response({})
    row = await start_session(request, response, found)
    result = LoginResult(user=UserRead.model_validate(found), csrf_token=row.csrf_token)
    response.body = result.model_dump_json().encode()
    return response


@router.post("/auth/logout", roles=STAFF, body=LogoutBody, status=204)
async def logout(request: web.Request, user: User, body: LogoutBody) -> web.StreamResponse:
    """Sign out here, or everywhere (every session of this user on every device)."""
    await end_sessions(request, user, everywhere=body.everywhere)
    async with transaction(request.app[db_key]) as session:
        remaining = (await session.exec(select(UserSession.id).where(UserSession.user_id == user.id))).first()
        if remaining is None:  # signed out on every device: nobody should transfer conversations to them
            await session.exec(  # type: ignore[call-overload]
                update(User).where(col(User.id) == user.id).values(presence=Presence.OFFLINE)
            )
    response = web.Response(status=204)
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/auth/me", roles=STAFF, response=UserRead)
async def me(request: web.Request, user: User) -> UserRead:
    """The signed-in user."""
    return UserRead.model_validate(user)


@router.get("/auth/session", roles=STAFF, response=LoginResult)
async def session_info(request: web.Request, user: User) -> LoginResult:
    """The signed-in user and this session's CSRF token (pages call this after a reload)."""
    found = await current_session(request)
    assert found is not None
    return LoginResult(user=UserRead.model_validate(user), csrf_token=found[1].csrf_token)


@router.post("/auth/password", roles=STAFF, body=PasswordBody, status=204)
async def change_password(request: web.Request, user: User, body: PasswordBody) -> None:
    """Change one's own password; every session of this user (this one too) is signed out."""
    if not await asyncio.to_thread(verify_password, user.password_hash, body.old_password):
        raise web.HTTPForbidden(text="原密码不正确", reason="Bad Password")
    new_hash = await asyncio.to_thread(hash_password, body.new_password)
    async with transaction(request.app[db_key]) as session:
        await session.exec(  # type: ignore[call-overload]
            update(User).where(col(User.id) == user.id).values(password_hash=new_hash)
        )
        record_audit(session, actor=Actor(user.id, user.username, str(user.role)), action="user.password",
                     object_type="user", object_id=user.id)  # fmt: skip
    await end_sessions(request, user, everywhere=True)


def setup(app: web.Application) -> None:
    auth.setup(app)
    router.install(app)
