"""Staff sign-in: argon2 passwords, throttling, rate limit (shared through Redis), CSRF, sessions."""

from __future__ import annotations

from typing import Any

from sqlmodel import select

from bot.app import create_app
from bot.keys import db_key
from bot.web.auth import SESSION_COOKIE, policy_of
from bot.web.ratelimit import counters
from config.settings import Settings
from models import AuditLog, User, UserSession
from tests.web.conftest import PASSWORD, make_user, rows, sign_in


async def login(client: Any, username: str, password: str, **headers: str) -> Any:
    return await client.post("/api/v1/auth/login", json={"username": username, "password": password}, headers=headers)


async def test_password_is_stored_as_argon2_and_login_sets_a_strict_httponly_cookie(client: Any) -> None:
    user = await make_user(client, "agent")
    assert user.password_hash.startswith("$argon2") and PASSWORD not in user.password_hash

    resp = await login(client, user.username, PASSWORD)
    assert resp.status == 200
    body = await resp.json()
    assert body["user"]["username"] == user.username and "password_hash" not in body["user"]
    cookie = resp.cookies[SESSION_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and not cookie["secure"]
    me = await client.get("/api/v1/auth/me")
    assert me.status == 200 and (await me.json())["id"] == user.id


async def test_wrong_password_and_unknown_user_look_the_same(client: Any) -> None:
    user = await make_user(client, "agent")
    wrong = await login(client, user.username, "not-the-password")
    unknown = await login(client, "nobody-here", "whatever-pass")
    assert wrong.status == unknown.status == 401
    assert (await wrong.json()) == (await unknown.json())
    assert SESSION_COOKIE not in wrong.cookies


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pinned(client: Any) -> FakeClock:
    clock = FakeClock()
    counters(client.app).clock = clock
    return clock


async def test_wrong_passwords_slow_that_account_from_that_address_with_growing_delays(client: Any) -> None:
    clock = pinned(client)
    user = await make_user(client, "agent")
    for _ in range(5):
        assert (await login(client, user.username, "wrong-password")).status == 401
    waiting = await login(client, user.username, PASSWORD)  # even the right password waits out the delay
    assert waiting.status == 429 and waiting.headers["Retry-After"] == "1"
    assert (await waiting.json())["code"] == "rate_limited"
    clock.now += 1.1
    assert (await login(client, user.username, "wrong-password")).status == 401  # the 6th: now 2 s
    assert (await login(client, user.username, PASSWORD)).headers["Retry-After"] == "2"
    clock.now += 2.1
    assert (await login(client, user.username, PASSWORD)).status == 200  # no lock: the wait was all
    [row] = await rows(client, User, User.id == user.id)
    assert row.locked_until is None and row.failed_logins == 0  # nothing an attacker could set on the account


async def test_unknown_and_known_usernames_get_the_same_answers_all_the_way(client: Any) -> None:
    pinned(client)
    user = await make_user(client, "agent")
    known = [await login(client, user.username, "wrong-password") for _ in range(7)]
    unknown = [await login(client, "nobody-at-all", "wrong-password") for _ in range(7)]
    assert [r.status for r in known] == [r.status for r in unknown] == [401] * 5 + [429] * 2
    assert [await r.json() for r in known] == [await r.json() for r in unknown]
    assert [r.headers.get("Retry-After") for r in known] == [r.headers.get("Retry-After") for r in unknown]


async def test_a_throttled_account_still_signs_in_from_another_address(
    settings: Settings, seeded_faq: int, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(create_app(settings.model_copy(update={"trust_proxy": True})))
    user = await make_user(client, "agent")
    attacker = {"X-Forwarded-For": "203.0.113.9"}
    for _ in range(8):
        await login(client, user.username, "wrong-password", **attacker)
    assert (await login(client, user.username, PASSWORD, **attacker)).status == 429
    assert (await login(client, user.username, PASSWORD, **{"X-Forwarded-For": "198.51.100.7"})).status == 200


async def test_an_admin_lifts_the_throttle(client: Any, browsers: Any) -> None:
    pinned(client)
    user = await make_user(client, "agent")
    for _ in range(6):
        await login(client, user.username, "wrong-password")
    assert (await login(client, user.username, PASSWORD)).status == 429
    admin = await make_user(client, "admin")
    other = browsers(client)
    headers = await sign_in(other, admin.username)
    assert (await other.post(f"/api/v1/admin/users/{user.id}/unlock", headers=headers)).status == 200
    assert (await login(client, user.username, PASSWORD)).status == 200
    assert await rows(client, AuditLog, AuditLog.action == "user.unlock")


async def test_a_success_resets_the_failure_count(client: Any) -> None:
    user = await make_user(client, "agent")
    for _ in range(4):
        await login(client, user.username, "wrong-password")
    assert (await login(client, user.username, PASSWORD)).status == 200
    for _ in range(4):
        await login(client, user.username, "wrong-password")
    assert (await login(client, user.username, PASSWORD)).status == 200


async def test_too_many_attempts_from_one_address_are_refused(client: Any) -> None:
    policy_of(client.app).attempts_per_window = 3
    user = await make_user(client, "agent")
    for _ in range(4):  # a whole office signing in from one address: successes do not count
        assert (await login(client, user.username, PASSWORD)).status == 200
    statuses = [(await login(client, f"guess-{n}", "x-password")).status for n in range(3)]
    assert statuses == [401, 401, 401]
    refused = await login(client, user.username, PASSWORD)
    assert refused.status == 429 and (await refused.json())["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) > 0


async def test_rate_limit_is_shared_by_workers_through_redis(
    settings: Settings, seeded_faq: int, redis_url: str, aiohttp_client: Any
) -> None:
    shared = settings.model_copy(update={"redis_url": redis_url})
    worker_a = await aiohttp_client(create_app(shared))
    worker_b = await aiohttp_client(create_app(shared))
    for worker in (worker_a, worker_b):
        policy_of(worker.app).attempts_per_window = 4
    for n in range(2):
        assert (await login(worker_a, f"guess-{n}", "x-password")).status == 401
        assert (await login(worker_b, f"guess-{n}", "x-password")).status == 401
    # Four attempts in total were made across both workers: the fifth is refused on either.
    assert (await login(worker_a, "guess-5", "x-password")).status == 429


async def test_state_changing_call_without_csrf_token_is_refused(client: Any) -> None:
    user = await make_user(client, "supervisor")
    headers = await sign_in(client, user.username)
    body = {"question": "新问题", "answer": "新答案"}
    missing = await client.post("/api/v1/admin/faqs", json=body)
    forged = await client.post("/api/v1/admin/faqs", json=body, headers={"X-CSRF-Token": "forged"})
    assert missing.status == forged.status == 403
    assert (await missing.json())["code"] == "csrf_failed"
    ok = await client.post("/api/v1/admin/faqs", json=body, headers=headers)
    assert ok.status == 201


async def test_each_login_gets_a_new_session_id_and_the_old_one_dies(client: Any) -> None:
    user = await make_user(client, "agent")
    first = (await login(client, user.username, PASSWORD)).cookies[SESSION_COOKIE].value
    second = (await login(client, user.username, PASSWORD)).cookies[SESSION_COOKIE].value
    assert first != second
    async with client.app[db_key]() as session:
        ids = set((await session.exec(select(UserSession.id))).all())
    assert second in ids and first not in ids


async def test_logout_everywhere_ends_every_session_of_the_user(client: Any, browsers: Any) -> None:
    user = await make_user(client, "agent")
    laptop = browsers(client)
    headers = await sign_in(client, user.username)
    await sign_in(laptop, user.username)
    assert (await laptop.get("/api/v1/auth/me")).status == 200
    resp = await client.post("/api/v1/auth/logout", json={"everywhere": True}, headers=headers)
    assert resp.status == 204
    assert (await laptop.get("/api/v1/auth/me")).status == 401
    assert (await client.get("/api/v1/auth/me")).status == 401
    assert await rows(client, UserSession, UserSession.user_id == user.id) == []
    [row] = await rows(client, User, User.id == user.id)
    assert row.presence == "offline"


async def test_cookie_is_secure_behind_an_https_proxy_only_when_the_proxy_is_trusted(
    settings: Settings, seeded_faq: int, aiohttp_client: Any
) -> None:
    proxied = await aiohttp_client(create_app(settings.model_copy(update={"trust_proxy": True})))
    user = await make_user(proxied, "agent")
    resp = await login(proxied, user.username, PASSWORD, **{"X-Forwarded-Proto": "https"})
    assert resp.cookies[SESSION_COOKIE]["secure"]

    direct = await aiohttp_client(create_app(settings))
    resp = await login(direct, user.username, PASSWORD, **{"X-Forwarded-Proto": "https"})
    assert not resp.cookies[SESSION_COOKIE]["secure"]


async def test_session_endpoint_returns_the_csrf_token_after_a_reload(client: Any) -> None:
    user = await make_user(client, "agent")
    headers = await sign_in(client, user.username)
    info = await (await client.get("/api/v1/auth/session")).json()
    assert info["csrf_token"] == headers["X-CSRF-Token"]


async def test_disabled_user_loses_access_at_once(client: Any, staff: Any) -> None:
    admin = await staff("admin")
    agent = await staff("agent")
    assert (await agent.get("/console/queue")).status == 200
    resp = await admin.put(f"/admin/users/{agent.id}", {"active": False})
    assert resp.status == 200
    assert (await agent.get("/console/queue")).status == 401
    assert (await login(client, agent.user.username, PASSWORD)).status == 401
