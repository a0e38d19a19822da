"""客户 pages in a real browser: search per role (masked for agents), the 360 view, tags, consent, merge
with preview and undo, PIPL export and erase for admins, and the page at 390 px wide."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlmodel import col, select

from models import ChannelIdentity, Customer
from models.scrm import Consent, CustomerValue, MergeRecord, Order
from scrm.db import transaction
from tests.browser.conftest import LiveServer, screenshot, staff_login
from tests.browser.test_staff_pages import PASSWORD, make_staff
from tests.browser.test_tickets_pages import complaint

pytestmark = pytest.mark.browser


async def members(server: LiveServer) -> tuple[int, int]:
    """张三丰 (complained, a WeChat identity, orders, high value) and his duplicate record from the web chat."""
    ticket = await complaint(server)
    async with transaction(server.db) as session:
        customer = await session.get(Customer, ticket.customer_id)
        assert customer is not None and customer.id is not None
        customer.region, customer.gender = "杭州", "男"
        cid, amount = customer.id, Decimal("2399.00")
        session.add(ChannelIdentity(customer_id=cid, channel="wechat_oa", app_id="default", external_id="oA1b2c3"))
        paid = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
        session.add(Order(customer_id=cid, order_no="SO2026112300017", amount=amount, ordered_at=paid))
        session.add(CustomerValue(customer_id=cid, order_count=1, total_spend=amount, tier="高价值"))
        duplicate = Customer(name="张三丰", region="杭州")
        session.add(duplicate)
        await session.flush()
        assert duplicate.id is not None
        session.add(ChannelIdentity(customer_id=duplicate.id, channel="webchat", app_id="default", external_id="v-9"))
        session.add(Customer(name="李四", phone="13900001111"))
        return customer.id, duplicate.id


async def test_supervisor_finds_a_customer_tags_him_and_merges_his_duplicate_with_undo(
    live_server: LiveServer, new_page: Any
) -> None:
    await make_staff(live_server, "zhuguan2", "supervisor")
    main_id, duplicate_id = await members(live_server)
    page = await new_page(1280, 800)
    await staff_login(page, live_server, "zhuguan2", PASSWORD)
    await page.wait_for_url("**/console")
    await page.goto(live_server.url + "/admin/customers")
    await page.fill("#c-q", "1381234")  # part of a number: supervisors may search that way
    await page.click("#c-search")
    row = page.locator(f"#customers-table tr[data-customer-id='{main_id}']")
    await row.wait_for()
    assert "13812345678" in await row.inner_text()
    await page.fill("#c-q", "")
    await page.select_option("#c-tier", "高价值")
    await page.wait_for_selector("#customers-total:has-text('共 1 位')")
    await page.select_option("#c-tier", "")
    await page.select_option("#c-channel", "wechat_oa")
    await page.wait_for_selector("#customers-total:has-text('共 1 位')")
    assert "公众号" in await row.inner_text()
    await screenshot(page, "customers-search")

    await row.locator("a.customer-link").click()
    await page.wait_for_url(f"**/admin/customers/{main_id}")
    await page.wait_for_selector("#c-identities:has-text('公众号')")
    assert "高价值" in await page.inner_text("#c-value")
    assert "SO2026112300017" in await page.inner_text("#c-orders")
    assert "物流配送" in await page.inner_text("#c-tickets")

    await page.fill("#tag-input", "重要客户")
    await page.click("#tag-add")
    await page.wait_for_selector("#c-tags .badge.tag[data-tag='重要客户']")
    await page.click("#c-consent li[data-purpose='marketing'] button")
    await page.wait_for_selector("#c-consent li[data-purpose='marketing']:has-text('已退订')")

    await page.fill("#merge-source", str(duplicate_id))
    await page.click("#merge-preview-btn")
    await page.wait_for_selector("#merge-preview:has-text('渠道身份 1 条')")
    await screenshot(page, "customer-360")
    async with live_server.db() as session:  # the preview changed nothing
        assert (await session.get(Customer, duplicate_id)).merged_into_id is None  # type: ignore[union-attr]
    await page.click("#merge-confirm")
    await page.wait_for_selector("#merge-history .merge-undo")
    assert "网页" in await page.inner_text("#c-identities")
    await page.click("#merge-history .merge-undo")
    await page.wait_for_selector("#merge-history:has-text('已撤销')")

    async with live_server.db() as session:
        assert (await session.get(Customer, duplicate_id)).merged_into_id is None  # type: ignore[union-attr]
        merge = (await session.exec(select(MergeRecord))).one()
        assert merge.undone_at is not None
        consent = (await session.exec(select(Consent).where(col(Consent.customer_id) == main_id))).one()
        assert (consent.purpose, consent.granted) == ("marketing", False)


async def test_agent_sees_customers_masked_and_finds_one_only_by_the_whole_number(
    live_server: LiveServer, new_page: Any
) -> None:
    await make_staff(live_server, "kefu-qian", "agent")
    main_id, _ = await members(live_server)
    page = await new_page(1280, 800)
    await staff_login(page, live_server, "kefu-qian", PASSWORD)
    await page.wait_for_url("**/console")
    await page.goto(live_server.url + "/admin/customers")
    await page.fill("#c-q", "1381234")
    await page.click("#c-search")
    await page.wait_for_selector("#customers-error:has-text('完整的手机号')")  # a part of a number finds nobody
    await page.fill("#c-q", "13812345678")
    await page.click("#c-search")
    row = page.locator(f"#customers-table tr[data-customer-id='{main_id}']")
    await row.wait_for()
    text = await row.inner_text()
    assert "13812345678" not in text and "张**" in text
    await row.locator("a.customer-link").click()
    await page.wait_for_selector("#c-identities")
    body = await page.inner_text("#page")
    assert "13812345678" not in body and "个人信息已按您的角色脱敏" in body
    assert await page.locator("#c-merge").count() == 0 and await page.locator("#c-privacy").count() == 0


async def test_admin_customer_page_at_390_px_exports_and_erases_with_confirmation(
    live_server: LiveServer, new_page: Any
) -> None:
    await make_staff(live_server, "guanli", "admin")
    main_id, _ = await members(live_server)
    page = await new_page(390, 844)
    await staff_login(page, live_server, "guanli", PASSWORD)
    await page.wait_for_url("**/admin/faq")
    await page.goto(live_server.url + f"/admin/customers/{main_id}")
    await page.wait_for_selector("#c-privacy")
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the customer page is {width} px wide on a 390 px screen"
    await screenshot(page, "customer-360-390px")

    async with page.expect_download() as download:
        await page.click("#c-export")
    assert (await download.value).suggested_filename == f"customer-{main_id}.json"

    await page.click("#c-erase")
    await page.fill("dialog input[name=confirm]", "999")
    await page.click("#dialog-save")
    await page.wait_for_selector("dialog .error:has-text('客户编号不一致')")
    async with live_server.db() as session:
        assert (await session.get(Customer, main_id)).erased_at is None  # type: ignore[union-attr]
    await page.fill("dialog input[name=confirm]", str(main_id))
    await page.click("#dialog-save")
    await page.wait_for_selector("#customer-name + .badge:has-text('个人信息已删除')")
    async with live_server.db() as session:
        erased = await session.get(Customer, main_id)
        assert erased is not None and erased.erased_at is not None and erased.phone in (None, "")
