"""Every staff page as every role, at 1280 px and 390 px: the menu offers what the role may open, the
others say 没有权限, nothing says 页面不存在, and no English word is on screen (identifiers that are
product or protocol names excepted). Screenshots of each page go to var/screenshots/tour-*."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.conftest import LiveServer, screenshot, staff_login
from tests.browser.test_staff_pages import PASSWORD, make_staff
from tests.browser.test_tickets_pages import complaint

pytestmark = pytest.mark.browser

PAGES = ["/console", "/admin/tickets", "/admin/customers", "/admin/segments", "/admin/faq", "/admin/canned",
         "/admin/dashboard", "/admin/rules", "/admin/gaps", "/admin/users", "/admin/channels", "/admin/audit"]
AGENT_MENU = {"/console", "/admin/tickets", "/admin/customers", "/admin/segments"}
LEAD_MENU = AGENT_MENU | {"/admin/faq", "/admin/canned", "/admin/dashboard", "/admin/rules", "/admin/gaps"}
MENU = {"agent": AGENT_MENU, "supervisor": LEAD_MENU, "admin": set(PAGES)}
# Names of products, protocols and formats that Chinese staff read as they are.
_NAMES = "Huike AppID AppSecret Token EncodingAESKey CorpID AgentID Secret NPS CSAT SLA RFM CSV XLSX Rasa YAML FAQ"
_KEYS = "App JSON UnionID Enter Shift Alt HUIKE PIPL P1 P2 P3 P4 R F M J K N huike wechat simulate PDF"
ALLOWED = set(f"{_NAMES} {_KEYS}".split(" "))
WORD = re.compile(r"[A-Za-z][A-Za-z0-9_\-]*")


def english_on(text: str, usernames: set[str]) -> set[str]:
    # Addresses, template variables and environment variable names are typed as they are.
    text = re.sub(r"https?://\S+|<script[^>]*>|\S+@\S+|/static/\S+|\{\{[^}]*\}\}|\{%[^%]*%\}|HUIKE_\w*", " ", text)
    words = set(WORD.findall(text))
    return {w for w in words if w not in ALLOWED and w not in usernames and not re.fullmatch(r"R\d|F\d|M\d|SO\d+", w)}


@pytest.mark.parametrize("role", ["agent", "supervisor", "admin"])
async def test_each_role_walks_every_page(live_server: LiveServer, new_page: Any, role: str) -> None:
    user = await make_staff(live_server, f"tour-{role}", role)
    ticket = await complaint(live_server)
    page = await new_page(1280, 800)
    await staff_login(page, live_server, user.username, PASSWORD)
    await page.wait_for_selector("#me-name")
    menu = set(await page.eval_on_selector_all(".topnav a", "links => links.map(a => a.getAttribute('href'))"))
    assert menu == MENU[role]
    found: dict[str, set[str]] = {}
    for path in [*PAGES, f"/admin/tickets/{ticket.id}", f"/admin/customers/{ticket.customer_id}"]:
        await page.goto(live_server.url + path)
        await page.wait_for_selector("#me-name")
        await page.wait_for_load_state("networkidle")
        name = path.strip("/").replace("/", "-")
        await screenshot(page, f"tour-{role}-{name}")
        # Raw record data (the audit log's rule conditions as stored) is left out of the language check.
        body = await page.evaluate(
            "() => { document.querySelectorAll('code.raw').forEach(e => e.remove()); return document.body.innerText; }"
        )
        assert "页面不存在" not in body, path
        allowed = path in MENU[role] or path.startswith(("/admin/tickets/", "/admin/customers/"))
        assert ("没有权限" in body) == (not allowed), (role, path)
        if words := english_on(body, {user.username}):
            found[path] = words
    assert found == {}, f"English on screen for {role}: {found}"


async def test_mobile_width_pages_fit(live_server: LiveServer, new_page: Any) -> None:
    user = await make_staff(live_server, "tour-mobile", "supervisor")
    ticket = await complaint(live_server)
    page = await new_page(390, 844)
    await staff_login(page, live_server, user.username, PASSWORD)
    await page.wait_for_selector("#me-name")
    for path in [
        "/admin/customers",
        f"/admin/customers/{ticket.customer_id}",
        "/admin/tickets",
        f"/admin/tickets/{ticket.id}",
    ]:
        await page.goto(live_server.url + path)
        await page.wait_for_load_state("networkidle")
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (path, width)  # wide tables scroll inside their panel, the page does not
        await screenshot(page, "tour-390-" + path.strip("/").replace("/", "-"))
