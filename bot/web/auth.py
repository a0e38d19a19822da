"""Staff authentication: argon2 passwords, server-side sessions, CSRF tokens, role checks, lockout.

- Sessions live in the database (`UserSession`); the cookie holds only a random id, HttpOnly,
  SameSite=Strict, and Secure when the request came over HTTPS (directly or via a trusted proxy).
- Every state-changing API call must carry the session's CSRF token in `X-CSRF-Token`.
- Login attempts are rate limited per client address (shared through Redis when configured, so
  several workers count together) and an account is locked after repeated wrong passwords.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

import structlog
from aiohttp import web
from sqlalchemy import update
from sqlmodel import col, delete, select

from bot.keys import bus_key, db_key, settings_key
from bot.web.ratelimit import Window
from models import Role, User, UserSession, aware, utcnow
from scrm.audit import Actor, record_audit
from scrm.db import transaction
from scrm.errors import DomainError
from scrm.privacy import Viewer
from scrm.users import hash_password, verify_password

__all__ = ["hash_password", "verify_password"]

log = structlog.get_logger(__name__)

SESSION_COOKIE = "huike_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_TTL = timedelta(hours=12)
user_key = web.RequestKey("current_user", User)


@dataclass
class LoginPolicy:
    """How many wrong passwords lock an account, for how long; how many attempts an address may make."""

    max_failures: int = 5
    lockout: timedelta = timedelta(minutes=15)
    attempts_per_window: int = 20
    window: Window = field(default_factory=lambda: Window(300))


login_policy_key = web.AppKey("login_policy", LoginPolicy)


def setup(app: web.Application) -> None:
    app[login_policy_key] = LoginPolicy()


def policy_of(app: web.Application) -> LoginPolicy:
    return app[login_policy_key]


# --- who sees personal data --------------------------------------------------------------


def sees_personal(user: User) -> bool:
    """Supervisors and admins see customers' names, phones and birthdays; agents see them masked."""
    return user.role in (Role.ADMIN, Role.SUPERVISOR)


def viewer(user: User, *names: str | None) -> Viewer:
    """How `user` may see data about the customers called `names` (masked in free text for agents)."""
    return Viewer(sees_personal(user)).about(*names)


# --- sessions -----------------------------------------------------------------------------


async def current_session(request: web.Request) -> tuple[User, UserSession] | None:
    sid = request.cookies.get(SESSION_COOKIE)
    if not sid:
        return None
    async with request.app[db_key]() as session:
        row = await session.get(UserSession, sid)
        if row is None or aware(row.expires_at) < utcnow():
            return None
        user = await session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    return user, row


async def authorize(request: web.Request, roles: Iterable[Role], *, state_changing: bool) -> User | None:
    """The signed-in user if their role is allowed: 401 without a session, 403 for a wrong role or CSRF."""
    roles = frozenset(roles)
    if not roles:
        return None
    found = await current_session(request)
    if found is None:
        raise web.HTTPUnauthorized(text="请先登录", reason="Unauthorized")
    user, row = found
    if user.role not in roles:
        raise web.HTTPForbidden(text="没有权限执行此操作", reason="Forbidden")
    if state_changing and not secrets.compare_digest(request.headers.get(CSRF_HEADER, ""), row.csrf_token):
        raise CsrfFailed("CSRF 校验失败，请刷新页面后重试")
    request[user_key] = user
    return user


async def start_session(request: web.Request, response: web.StreamResponse, user: User) -> UserSession:
    """A fresh session id on every login (no fixation), cookie HttpOnly + SameSite (+ Secure over HTTPS)."""
    assert user.id is not None
    row = UserSession(
        id=secrets.token_urlsafe(32),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(24),
        expires_at=utcnow() + SESSION_TTL,
    )
    async with transaction(request.app[db_key]) as session:
        old = request.cookies.get(SESSION_COOKIE)
        if old and (stale := await session.get(UserSession, old)):
            await session.delete(stale)
        await session.exec(delete(UserSession).where(col(UserSession.expires_at) < utcnow()))  # type: ignore[call-overload]
        session.add(row)
    response.set_cookie(
        SESSION_COOKIE,
        row.id,
        httponly=True,
        samesite="Strict",
        secure=is_https(request),
        max_age=int(SESSION_TTL.total_seconds()),
        path="/",
    )
    return row


SESSIONS_ENDED = "auth.sessions_ended"  # bus topic: live connections of these sessions close (any worker)


async def end_sessions(request: web.Request, user: User, *, everywhere: bool) -> None:
    sid = request.cookies.get(SESSION_COOKIE, "")
    async with transaction(request.app[db_key]) as session:
        stmt = delete(UserSession).where(col(UserSession.user_id) == user.id)
        if not everywhere:
            stmt = stmt.where(col(UserSession.id) == sid)
        await session.exec(stmt)  # type: ignore[call-overload]
    await announce_sessions_ended(request.app, user.id or 0, None if everywhere else sid)


async def announce_sessions_ended(app: web.Application, user_id: int, session_id: str | None = None) -> None:
    """Tell every worker; session_id None = all sessions of the user."""
    await app[bus_key].publish(SESSIONS_ENDED, {"user_id": user_id, "session_id": session_id})


def is_https(request: web.Request) -> bool:
    if request.app[settings_key].trust_proxy:
        return request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip() == "https"
    return request.secure


def client_address(request: web.Request) -> str:
    if request.app[settings_key].trust_proxy and (forwarded := request.headers.get("X-Forwarded-For")):
        return forwarded.split(",")[0].strip()[:64]
    return request.remote or "unknown"


# --- login --------------------------------------------------------------------------------


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the username does not exist, so both cases cost the same time.
    Made on first use: an argon2 hash takes ~64 MB and 0.2 s, not a cost of importing the app."""
    return hash_password("not-a-real-password-" + secrets.token_hex(8))


def _verify_dummy(password: str) -> None:
    verify_password(_dummy_hash(), password)


class AccountLocked(DomainError):
    code, status = "account_locked", 429


class TooManyAttempts(DomainError):
    code, status = "too_many_attempts", 429


class CsrfFailed(DomainError):
    code, status = "csrf_failed", 403


class DefaultPassword(DomainError):
    code, status = "default_password", 403


async def check_rate(request: web.Request) -> None:
    """429 when this address already failed too often in the window (an office behind one NAT may
    sign in many agents at 9:00; only wrong passwords count)."""
    policy = policy_of(request.app)
    if await _failures(request, increment=False) >= policy.attempts_per_window:
        log.warning("login_rate_limited", address=client_address(request))
        raise TooManyAttempts("登录尝试过于频繁，请稍后再试")


async def _failures(request: web.Request, *, increment: bool) -> int:
    """Failed logins from this address in the current window, shared by workers through Redis."""
    key = f"login-failures:{client_address(request)}"
    return await policy_of(request.app).window.count(request.app, key, increment=increment)


async def authenticate(request: web.Request, username: str, password: str) -> User:
    """The user for these credentials; 401 when wrong, 429 when rate limited or the account is locked."""
    await check_rate(request)
    policy = policy_of(request.app)
    sessions = request.app[db_key]
    async with sessions() as session:
        user = (await session.exec(select(User).where(User.username == username))).first()
    if user is None or not user.active:
        await asyncio.to_thread(_verify_dummy, password)
        await _failures(request, increment=True)
        raise web.HTTPUnauthorized(text="用户名或密码错误", reason="Bad Credentials")
    now = utcnow()
    if user.locked_until is not None and aware(user.locked_until) > now:
        minutes = max(1, int((aware(user.locked_until) - now).total_seconds() // 60) + 1)
        raise AccountLocked(f"密码错误次数过多，账号已锁定，请 {minutes} 分钟后再试")
    if await asyncio.to_thread(verify_password, user.password_hash, password):
        settings = request.app[settings_key]
        if settings.is_production and settings.is_default_password(password):
            log.warning("login_refused_default_password", user_id=user.id)
            raise DefaultPassword("该账号仍在使用公开的默认密码，生产环境禁止登录；请用 huike user set-password 重置")
        if user.failed_logins or user.locked_until:
            async with transaction(sessions) as session:
                await session.exec(  # type: ignore[call-overload]
                    update(User).where(col(User.id) == user.id).values(failed_logins=0, locked_until=None)
                )
        return user
    await _failures(request, increment=True)
    await _count_failure(request, user, policy)
    raise web.HTTPUnauthorized(text="用户名或密码错误", reason="Bad Credentials")


async def _count_failure(request: web.Request, user: User, policy: LoginPolicy) -> None:
    """One more wrong password (atomic increment); at the limit the account is locked for a while."""
    async with transaction(request.app[db_key]) as session:
        await session.exec(  # type: ignore[call-overload]
            update(User).where(col(User.id) == user.id).values(failed_logins=col(User.failed_logins) + 1)
        )
        failures = (await session.exec(select(User.failed_logins).where(User.id == user.id))).one()
        if failures >= policy.max_failures:
            until = utcnow() + policy.lockout
            await session.exec(  # type: ignore[call-overload]
                update(User).where(col(User.id) == user.id).values(failed_logins=0, locked_until=until)
            )
            record_audit(
                session,
                actor=Actor.system("auth"),
                action="user.lockout",
                object_type="user",
                object_id=user.id,
                after={"locked_until": until, "failures": failures, "address": client_address(request)},
            )
            log.warning("account_locked", user_id=user.id, failures=failures)
