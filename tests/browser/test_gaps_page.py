"""未解决问题 in a real browser: customers' unanswered questions, grouped; one click teaches the FAQ."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from sqlmodel import select

from models import FaqEntry
from tests.browser.conftest import LiveServer, screenshot, staff_login
from tests.browser.test_staff_pages import PASSWORD, make_staff

pytestmark = pytest.mark.browser
CUSTOMERS = [
    ["国外可以寄吗", "你们招兼职吗", "纸质发票能邮寄吗"],
    ["国外可以寄吗", "招兼职吗", "你们能开直播吗"],
    ["寄到美国可以吗", "你们还招兼职吗", "能不能开直播带货", "有没有学生优惠"],
]


async def customers_ask(server: LiveServer) -> None:
    """Each customer on their own web-chat cookie, over real HTTP."""
    for n, questions in enumerate(CUSTOMERS):
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            for i, text in enumerate(questions):
                body = {"text": text, "client_msg_id": f"c{n}-{i}"}
                async with http.post(server.url + "/api/v1/webchat/messages", json=body) as resp:
                    assert resp.status == 201, await resp.text()


async def test_supervisor_turns_unanswered_questions_into_faq_content(live_server: LiveServer, new_page: Any) -> None:
    await customers_ask(live_server)
    await make_staff(live_server, "laoli", "supervisor")
    page = await new_page(1440, 900)
    await staff_login(page, live_server, "laoli", PASSWORD)
    await page.wait_for_url("**/console")  # a supervisor starts in the console; the menu leads on
    await page.click("nav a:has-text('未解决问题')")
    await page.wait_for_url("**/admin/gaps")

    jobs = page.locator("#gap-table tr.gap-group", has_text="招兼职吗")
    await jobs.wait_for()
    assert await jobs.locator(".gap-count").inner_text() == "3"
    abroad = page.locator("#gap-table tr.gap-group", has_text="国外可以寄吗")
    assert await abroad.locator(".gap-count").inner_text() == "3"  # 寄到美国可以吗 joins it
    await screenshot(page, "content-gaps")

    # one group becomes similar questions of an existing FAQ ...
    option = abroad.locator("select.gap-target option", has_text="哪些地区可以配送？")
    await abroad.locator("select.gap-target").select_option(await option.get_attribute("value"))
    await abroad.locator("button.gap-assign").click()
    await page.wait_for_selector(".toast.ok:has-text('相似问法')")
    await page.locator("#gap-table tr.gap-group", has_text="国外可以寄吗").wait_for(state="detached")
    # ... another a draft FAQ, disabled until someone writes the answer
    await jobs.locator("button.gap-draft").click()
    await page.wait_for_selector(".toast.ok:has-text('草稿')")
    await page.locator("#gap-table tr.gap-group", has_text="招兼职吗").wait_for(state="detached")

    async with live_server.db() as session:
        shipping = (await session.exec(select(FaqEntry).where(FaqEntry.question == "哪些地区可以配送？"))).one()
        draft = (await session.exec(select(FaqEntry).where(FaqEntry.enabled == False))).one()  # noqa: E712
    assert "国外可以寄吗" in shipping.similar_questions
    assert {draft.question, *draft.similar_questions} == {"你们招兼职吗", "招兼职吗", "你们还招兼职吗"}
