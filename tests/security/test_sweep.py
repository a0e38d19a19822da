"""Roles, CSRF, SQL injection, XSS and secret leakage, checked on every route of the real app."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from aiohttp import web

from bot.keys import db_key
from bot.web.api import operations_key
from models import Role, UserCreate
from scrm.audit import Actor
from scrm.db import transaction
from scrm.users import create_user
from tests.security.allow_list import ALLOWED

LEVELS = ["public", "agent", "supervisor", "admin"]  # each level includes the ones after it
ROLES = ["agent", "supervisor", "admin"]
PARAMS = {"account": "default", "section": "faq", "tag": "x"}
SQLI = ["' OR '1'='1", "1; DROP TABLE customer; --", "%' UNION SELECT password_hash FROM \"user\" --", "\\'; --",
        "1) OR (1=1", "'||pg_sleep(0)||'", "\x00"]  # fmt: skip
XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>"\'&'


def routes(app: web.Application) -> set[str]:
    found = set()
    for route in app.router.routes():
        if route.resource is not None and route.method != "HEAD":
            found.add(f"{route.method} {route.resource.canonical}")
    return found


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PARAMS.get(m.group(1), "999999"), path)


class Staff:
    """Signed-in staff of each role, as cookie + CSRF headers (one test client, jar kept empty)."""

    def __init__(self) -> None:
        self.headers: dict[str, dict[str, str]] = {}

    async def login(self, client: Any, role: str) -> None:
        username = f"{role}-{uuid.uuid4().hex[:6]}"
        async with transaction(client.app[db_key]) as session:
            await create_user(session, data=UserCreate(username=username, password="secret-pass-1", role=Role(role)),
                              actor=Actor.system())  # fmt: skip
        resp = await client.post("/api/v1/auth/login", json={"username": username, "password": "secret-pass-1"})
        assert resp.status == 200, await resp.text()
        sid = resp.cookies["huike_session"].value
        self.headers[role] = {"Cookie": f"huike_session={sid}", "X-CSRF-Token": (await resp.json())["csrf_token"]}
        client.session.cookie_jar.clear()


@pytest.fixture
async def staff(client: Any) -> Staff:
    s = Staff()
    for role in ROLES:
        await s.login(client, role)
    return s


def test_every_route_is_reviewed(client: Any) -> None:
    registered = routes(client.app)
    assert registered - set(ALLOWED) == set(), "new routes: add them to tests/security/allow_list.py"
    assert set(ALLOWED) - registered == set(), "stale entries in the allow-list"
    declared = {f"{op.method} {op.full_path}": op for op in client.app[operations_key]}
    for key, op in declared.items():  # the API's own declaration agrees with the reviewed list
        level = ALLOWED[key]
        allowed = {r for r in ROLES if LEVELS.index(r) >= LEVELS.index(level)} if level != "public" else set()
        assert {str(r) for r in op.roles} == allowed, key


async def test_roles_are_enforced_on_every_api_route(client: Any, staff: Staff) -> None:
    checked = 0
    for op in client.app[operations_key]:
        key = f"{op.method} {op.full_path}"
        level = ALLOWED[key]
        if level == "public":
            continue
        url = concrete(op.full_path)
        resp = await client.request(op.method, url, json={})
        assert resp.status == 401, (key, "anonymous", resp.status)
        for role in ROLES:
            if key in ("POST /api/v1/auth/logout", "POST /api/v1/auth/password"):
                continue  # would end or change the session used by the rest of the sweep
            resp = await client.request(op.method, url, json={}, headers=staff.headers[role])
            if LEVELS.index(role) < LEVELS.index(level):
                assert resp.status == 403, (key, role, resp.status)
            else:
                assert resp.status not in (401, 403) and resp.status < 500, (key, role, resp.status, await resp.text())
            checked += 1
    assert checked > 50


async def test_csrf_is_required_on_every_state_changing_route(client: Any, staff: Staff) -> None:
    changing = [op for op in client.app[operations_key]
                if op.method != "GET" and ALLOWED[f"{op.method} {op.full_path}"] != "public"]  # fmt: skip
    assert changing
    for op in changing:
        for headers in ({"Cookie": staff.headers["admin"]["Cookie"]},
                        {"Cookie": staff.headers["admin"]["Cookie"], "X-CSRF-Token": "forged"}):  # fmt: skip
            resp = await client.request(op.method, concrete(op.full_path), json={}, headers=headers)
            assert resp.status == 403, (op.method, op.full_path, resp.status)
            assert (await resp.json())["code"] == "csrf_failed"


async def test_console_websocket_needs_a_staff_session(client: Any, staff: Staff) -> None:
    resp = await client.get("/api/v1/console/ws")
    assert resp.status == 401


async def test_sql_injection_payloads_in_every_query_parameter(client: Any, staff: Staff) -> None:
    admin = staff.headers["admin"]
    probed = 0
    for op in client.app[operations_key]:
        if op.method != "GET" or op.query is None or ALLOWED[f"GET {op.full_path}"] == "public":
            continue
        for field in op.query.model_fields:
            for payload in SQLI:
                resp = await client.get(concrete(op.full_path), params={field: payload}, headers=admin)
                assert resp.status < 500, (op.full_path, field, payload, resp.status, await resp.text())
                probed += 1
    assert probed > 0
    resp = await client.get("/api/v1/customers", headers=admin)  # the tables and the session survived
    assert resp.status == 200


async def test_xss_payload_in_a_customer_message_comes_back_as_inert_json_text(client: Any, staff: Staff) -> None:
    resp = await client.post("/api/v1/webchat/messages", json={"text": XSS, "client_msg_id": "xss-1"})
    assert resp.status == 201 and resp.content_type == "application/json"
    history = await client.get("/api/v1/webchat/messages")
    assert history.content_type == "application/json"
    texts = [m["text"] for m in (await history.json())["messages"]]
    assert XSS in texts  # stored and returned verbatim as a JSON string: the client renders it as text
    customers = await client.get("/api/v1/customers", headers=staff.headers["agent"])
    assert customers.content_type == "application/json"
    for page in ("/", "/console", "/admin", "/login"):
        html = await (await client.get(page)).text()
        assert XSS not in html and "<script>alert(" not in html  # pages never inline stored data


async def test_secrets_never_in_responses_or_logs(
    database_url: str, tmp_path: Any, db: Any, nlu_model_path: Any, seeded_faq: int, aiohttp_client: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from bot.app import create_app
    from tests.conftest import make_settings

    canaries = {"app_secret": "CANARY-APPSECRET-" + uuid.uuid4().hex, "secret_key": "CANARY-KEY-" + uuid.uuid4().hex,
                "wecom_secret": "CANARY-WECOM-" + uuid.uuid4().hex}  # fmt: skip
    aes = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
    settings = make_settings(database_url, tmp_path, nlu_model_path=nlu_model_path, log_level="DEBUG",
                             wechat_token="t", wechat_app_id="wx1", wechat_app_secret=canaries["app_secret"],
                             wechat_aes_key=aes, wecom_secret=canaries["wecom_secret"],
                             secret_key=canaries["secret_key"])  # fmt: skip
    client = await aiohttp_client(create_app(settings))
    staff = Staff()
    await staff.login(client, "admin")
    bad = await client.post("/api/v1/auth/login", json={"username": "nobody", "password": canaries["app_secret"]})
    assert bad.status in (401, 403, 429)
    bodies = []
    for op in client.app[operations_key]:
        if op.method == "GET":
            resp = await client.get(concrete(op.full_path), headers=staff.headers["admin"])
            bodies.append(await resp.text())
    for path in ("/api/v1/openapi.json", "/metrics", "/readyz", "/healthz"):
        bodies.append(await (await client.get(path)).text())
    logs = capsys.readouterr()
    everything = "\n".join(bodies) + logs.out + logs.err
    for name, canary in canaries.items():
        assert canary not in everything, f"{name} leaked"
    assert aes not in everything, "EncodingAESKey leaked"
