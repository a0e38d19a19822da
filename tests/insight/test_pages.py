"""What a supervisor sees in a real browser: 推荐商品 and churn risk beside a conversation, the spike
toast in the console, personas and churn risk on the dashboard."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from models import Conversation, Message, UserCreate, utcnow
from models.insight import ComplaintAlert
from scrm.audit import Actor
from scrm.db import transaction
from scrm.insight.nightly import run_insight
from scrm.users import create_user
from scrm.value import recompute_all
from tests.browser.conftest import LiveServer, chromium, live_server, new_page, screenshot, staff_login  # noqa: F401
from tests.insight.conftest import NOW, shop

pytestmark = pytest.mark.browser
PASSWORD = "browser-pass-1"


async def test_console_panel_spike_toast_and_dashboard(live_server: LiveServer, new_page: Any) -> None:  # noqa: F811
    db = live_server.db
    groups = await shop(db, loyal=6, lapsed=6, once=6)
    async with transaction(db) as s:
        await recompute_all(s, now=NOW)
        await create_user(s, data=UserCreate(username="zhuguan", password=PASSWORD, role="supervisor",
                                             display_name="主管"), actor=Actor.system("test"))  # fmt: skip
    await run_insight(db, now=NOW)
    lapsed = groups["lapsed"][0]
    async with transaction(db) as s:
        conv = Conversation(customer_id=lapsed, channel="wechat_oa", app_id="default", external_id=f"o-{lapsed}",
                            state="queued", last_message_at=NOW)  # fmt: skip
        s.add(conv)
        await s.flush()
        s.add(Message(conversation_id=conv.id, customer_id=lapsed, channel="wechat_oa", direction="in",
                      text="上次买的茶叶还有吗", channel_msg_id="m-tea", created_at=NOW))  # fmt: skip
        # an alert of the running hour (the console lists the last 7 days by the server's clock)
        s.add(ComplaintAlert(category="物流配送", channel="wechat_oa", hour_start=utcnow() - timedelta(minutes=5),
                             count=9, expected=1.5, ticket_ids=[101, 102]))  # fmt: skip

    page = await new_page()
    await staff_login(page, live_server, "zhuguan", PASSWORD)
    await page.wait_for_url("**/console")
    await page.wait_for_selector("text=投诉异常：物流配送（公众号）本小时 9 单")
    await page.goto(f"{live_server.url}/console#c={conv.id}")
    await page.reload()  # a hash change alone does not load the page again
    panel = page.locator("#insight-panel")
    await panel.locator("#recommendations li", has_text="茶具").wait_for()
    text = await panel.inner_text()
    assert "流失风险：高" in text and "画像：" in text and "保温杯" not in text
    await screenshot(page, "console-recommendations")

    await page.goto(live_server.url + "/admin/dashboard")
    personas = page.locator("#personas tbody tr")
    await personas.first.wait_for()
    assert await personas.count() == 6
    assert "流失风险" in await page.locator("#insight").inner_text()
    await screenshot(page, "dashboard-insight")
