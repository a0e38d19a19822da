"""Staff authentication: argon2 passwords, server-side sessions, CSRF tokens, role checks, lockout.

- Sessions live in the database (`UserSession`); the cookie holds only a random id, HttpOnly,
  SameSite=Strict, and Secure when the request came over HTTPS (directly or via a trusted proxy).
- Every state-changing API call must carry the session's CSRF token in `X-CSRF-Token`.
- Wrong passwords are throttled per (username, client address) with growing delays, and per address
  (shared through Redis when configured, so several workers count together); see `LoginPolicy`.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import math
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

import structlog
from aiohttp import web
from sqlmodel import col, delete, select

from bot.keys import bus_key, db_key, settings_key
from bot.web.ratelimit import RateLimited, counters
from config.settings import Settings
from models import Role, User, UserSession, aware, utcnow
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
    """Wrong passwords are throttled per (username, address): `free_failures` cost nothing, then each one
    makes that pair wait twice as long (1 s, 2 s, 4 s … up to `max_delay`). Nobody can lock an account
    from elsewhere, and an office behind one NAT is not locked out by one person's typos. An address is
    also refused after `attempts_per_window` wrong passwords in `window_seconds` (password spraying)."""

    free_failures: int = 5
    max_delay: int = 900
    attempts_per_window: int = 100
    window_seconds: int = 900
    memory_seconds: int = 24 * 3600  # how long a (username, address) pair's failures are remembered

    @classmethod
    def of(cls, settings: Settings) -> LoginPolicy:
        return cls(free_failures=settings.login_free_failures, max_delay=settings.login_max_delay,
                   attempts_per_window=settings.login_failures_per_address)  # fmt: skip

    def delay(self, failures: int) -> float:
        """Seconds this (username, address) waits after its `failures`-th wrong password."""
        if failures < self.free_failures:
            return 0.0
        return float(min(2 ** min(failures - self.free_failures, 30), self.max_delay))


login_policy_key = web.AppKey("login_policy", LoginPolicy)


def setup(app: web.Application) -> None:
    app[login_policy_key] = LoginPolicy.of(app[settings_key])


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
    if state_changing and not secrets.compare_digest(  # as bytes: a non-ASCII str would raise
        request.headers.get(CSRF_HEADER, "").encode(errors="replace"), row.csrf_token.encode()
    ):
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


class CsrfFailed(DomainError):
    code, status = "csrf_failed", 403


class DefaultPassword(DomainError):
    code, status = "default_password", 403


TOO_MANY = "登录尝试过于频繁，请 {} 秒后再试"


def throttle_prefix(username: str) -> str:
    return _pair(username)


def _pair(username: str, address: str = "") -> str:
    """Counter key of a (username, address) pair; the username hashed so any text is a safe key."""
    digest = hashlib.sha256(username.strip().casefold().encode()).hexdigest()[:32]
    return f"login:pair:{digest}:{address}"


async def check_rate(request: web.Request, username: str) -> None:
    """429 + Retry-After while this (username, address) waits out its delay, or the address sprayed too much.
    Known and unknown usernames are throttled alike: the answer tells nothing about which exist."""
    policy, store, address = policy_of(request.app), counters(request.app), client_address(request)
    blocked, wait = await store.peek(_pair(username, address) + ":wait")
    if blocked:
        log.warning("login_throttled", address=address)
        raise RateLimited(TOO_MANY.format(math.ceil(wait)), wait)
    failures, left = await store.peek(f"login:address:{address}")
    if failures >= policy.attempts_per_window:
        log.warning("login_rate_limited", address=address)
        raise RateLimited(TOO_MANY.format(math.ceil(left)), left)


async def _count_failure(request: web.Request, username: str) -> None:
    """One more wrong password for this (username, address) and this address; past the free ones, a delay."""
    policy, store, address = policy_of(request.app), counters(request.app), client_address(request)
    await store.hit(f"login:address:{address}", policy.window_seconds)
    failures, _left = await store.hit(_pair(username, address), policy.memory_seconds, refresh=True)
    if delay := policy.delay(failures):
        await store.remember(_pair(username, address) + ":wait", "1", delay)
        log.warning("login_delayed", address=address, failures=failures, seconds=delay)


async def lift_throttle(app: web.Application, username: str) -> None:
    """An admin's unlock: forget this username's failures from every address."""
    await counters(app).forget(_pair(username))


async def authenticate(request: web.Request, username: str, password: str) -> User:
    """The user for these credentials; 401 when wrong (the same answer, in the same time, for an unknown
    user), 429 + Retry-After while throttled."""
    await check_rate(request, username)
    async with request.app[db_key]() as session:
        user = (await session.exec(select(User).where(User.username == username))).first()
    if user is None or not user.active:
        await asyncio.to_thread(_verify_dummy, password)
    elif await asyncio.to_thread(verify_password, user.password_hash, password):
        settings = request.app[settings_key]
        if settings.is_production and settings.is_default_password(password):
            log.warning("login_refused_default_password", user_id=user.id)
            raise DefaultPassword("该账号仍在使用公开的默认密码，生产环境禁止登录；请用 huike user set-password 重置")
        await counters(request.app).forget(_pair(username, client_address(request)))
        return user
    await _count_failure(request, username)
    raise web.HTTPUnauthorized(text="用户名或密码错误", reason="Bad Credentials")
