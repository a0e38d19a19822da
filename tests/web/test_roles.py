"""Every console and admin route checks the role: anonymous 401, a forbidden role 403 (not just a hidden button)."""

from __future__ import annotations

import re
from typing import Any

from bot.web.api import ADMIN, STAFF, SUPERVISOR, operations_key
from tests.conftest import login_as
from tests.web.conftest import make_user, sign_in

# The intended role of every console/admin operation; a new route must be added here (the test fails otherwise).
EXPECTED = {
    ("GET", "/console/queue"): STAFF,
    ("GET", "/console/agents"): STAFF,
    ("PUT", "/console/presence"): STAFF,
    ("GET", "/console/escalations"): SUPERVISOR,
    ("GET", "/console/images/{name}"): STAFF,
    ("GET", "/console/conversations/{conversation_id}"): STAFF,
    ("POST", "/console/conversations/{conversation_id}/take"): STAFF,
    ("POST", "/console/conversations/{conversation_id}/messages"): STAFF,
    ("POST", "/console/conversations/{conversation_id}/notes"): STAFF,
    ("POST", "/console/conversations/{conversation_id}/transfer"): STAFF,
    ("POST", "/console/conversations/{conversation_id}/hand-back"): STAFF,
    ("POST", "/console/conversations/{conversation_id}/close"): STAFF,
    ("GET", "/console/conversations/{conversation_id}/suggestions"): STAFF,
    ("POST", "/console/conversations/{conversation_id}/confirm-faq"): STAFF,
    ("GET", "/console/canned"): STAFF,
    ("POST", "/console/canned"): SUPERVISOR,
    ("PUT", "/console/canned/{canned_id}"): SUPERVISOR,
    ("DELETE", "/console/canned/{canned_id}"): SUPERVISOR,
    ("GET", "/admin/faqs"): SUPERVISOR,
    ("GET", "/admin/faq-categories"): SUPERVISOR,
    ("POST", "/admin/faqs"): SUPERVISOR,
    ("POST", "/admin/faqs/try"): SUPERVISOR,
    ("GET", "/admin/faqs/export"): SUPERVISOR,
    ("POST", "/admin/faqs/import"): SUPERVISOR,
    ("GET", "/admin/faqs/{faq_id}"): SUPERVISOR,
    ("PUT", "/admin/faqs/{faq_id}"): SUPERVISOR,
    ("DELETE", "/admin/faqs/{faq_id}"): SUPERVISOR,
    ("POST", "/admin/faqs/check"): SUPERVISOR,
    ("GET", "/admin/gaps"): SUPERVISOR,
    ("POST", "/admin/gaps/assign"): SUPERVISOR,
    ("POST", "/admin/gaps/draft"): SUPERVISOR,
    ("GET", "/admin/users"): ADMIN,
    ("POST", "/admin/users"): ADMIN,
    ("PUT", "/admin/users/{user_id}"): ADMIN,
    ("POST", "/admin/users/{user_id}/unlock"): ADMIN,
    ("GET", "/admin/channels"): ADMIN,
    ("GET", "/admin/audit"): ADMIN,
    ("GET", "/admin/dashboard"): SUPERVISOR,
}


def ours(app: Any) -> list[Any]:
    return [op for op in app[operations_key] if op.tag in ("console", "admin")]


def test_every_console_and_admin_route_has_its_intended_roles_declared(client: Any) -> None:
    declared = {(op.method, op.path): op.roles for op in ours(client.app)}
    assert set(declared) == set(EXPECTED), "new or removed route: update EXPECTED"
    wrong = {key: sorted(roles) for key, roles in declared.items() if roles != EXPECTED[key]}
    assert wrong == {}


async def test_role_matrix_anonymous_401_forbidden_403_allowed_passes(client: Any, browsers: Any) -> None:
    jars: dict[str, Any] = {"anonymous": browsers(client)}
    headers: dict[str, dict[str, str]] = {"anonymous": {}}
    for role in ("agent", "supervisor", "admin"):
        user = await make_user(client, role)
        jars[role] = browsers(client)
        headers[role] = await sign_in(jars[role], user.username)

    failures = []
    for op in ours(client.app):
        path = "/api/v1" + re.sub(r"{\w+}", "999999", op.path)
        for who, jar in jars.items():
            kwargs: dict[str, Any] = {"headers": headers[who]}
            if op.method not in ("GET", "DELETE"):
                kwargs["json"] = {}
            resp = await getattr(jar, op.method.lower())(path, **kwargs)
            status = resp.status
            resp.release()
            if who == "anonymous":
                expected_ok = status == 401
            elif who in op.roles:
                expected_ok = status not in (401, 403)
            else:
                expected_ok = status == 403
            if not expected_ok:
                failures.append(f"{op.method} {op.path} as {who}: {status}")
    assert failures == []


async def test_staff_pages_send_anonymous_visitors_to_the_login(client: Any) -> None:
    for page in ("/console", "/admin/faq", "/admin/dashboard"):
        resp = await client.get(page, allow_redirects=False)
        assert resp.status == 302 and resp.headers["Location"] == "/login?next=" + page
    login = await client.get("/login")
    assert login.status == 200 and "frame-ancestors 'none'" in login.headers["Content-Security-Policy"]
    user = await make_user(client, "agent")
    await sign_in(client, user.username)
    for page in ("/console", "/admin/faq"):  # the shell loads; the API refuses what the role may not see
        resp = await client.get(page, allow_redirects=False)
        assert resp.status == 200 and "text/html" in resp.headers["Content-Type"]
    assert (await client.get("/api/v1/admin/faqs")).status == 403


async def test_openapi_lists_console_and_admin_operations_with_their_roles(client: Any) -> None:
    assert (await client.get("/api/v1/openapi.json")).status == 401  # the API's map is for staff only
    await login_as(client, "agent")
    doc = await (await client.get("/api/v1/openapi.json")).json()
    take = doc["paths"]["/api/v1/console/conversations/{conversation_id}/take"]["post"]
    assert take["x-roles"] == sorted(STAFF)
    assert doc["paths"]["/api/v1/admin/users"]["post"]["x-roles"] == ["admin"]
    assert "requestBody" in doc["paths"]["/api/v1/admin/faqs"]["post"]
