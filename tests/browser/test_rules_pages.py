"""分群 and 规则 in a real browser: the visual condition builder (any / not / tags / other segments) with its
live count, the raw JSON view, and the care rule editor with a template preview for a sample customer."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import select

from models import Customer
from models.scrm import CareRule, Segment
from scrm import tags
from scrm.audit import Actor
from scrm.db import transaction
from tests.browser.conftest import LiveServer, screenshot, staff_login
from tests.browser.test_staff_pages import PASSWORD, make_staff

pytestmark = pytest.mark.browser


async def base(server: LiveServer) -> None:
    async with transaction(server.db) as session:
        people = [("赵一", "成长", "金卡"), ("钱二", "成长", None), ("孙三", "成熟", "金卡"), ("李四", "流失", None)]
        for name, stage, level in people:
            session.add(Customer(name=name, lifecycle_stage=stage, member_level=level, points=100))
        await session.flush()
        zhao = (await session.exec(select(Customer).where(Customer.name == "赵一"))).one()
        await tags.add_tag(session, customer_id=zhao.id or 0, tag_name="爱买家电", actor=Actor.system("test"))


async def test_supervisor_builds_a_segment_visually_and_an_admin_writes_a_care_rule_with_a_preview(
    live_server: LiveServer, new_page: Any
) -> None:
    await make_staff(live_server, "zhuguan3", "supervisor")
    await make_staff(live_server, "guanli3", "admin")
    await base(live_server)
    page = await new_page(1280, 900)
    await staff_login(page, live_server, "zhuguan3", PASSWORD)
    await page.wait_for_url("**/console")
    await page.goto(live_server.url + "/admin/segments")
    await page.click("#segment-new")
    await page.fill("dialog input[name=seg-name]", "成长或金卡")
    builder = page.locator("#segment-builder")
    await builder.locator(".cb-mode").first.select_option("any")
    await builder.locator(".cb-add").first.select_option("attr")
    await builder.locator(".cb-leaf .cb-value").fill("成长")
    await page.wait_for_selector("#segment-builder-preview:has-text('当前匹配 2 位客户')")
    await builder.locator(".cb-add").first.select_option("attr")
    await builder.locator(".cb-leaf .cb-attr").nth(1).select_option("member_level")
    await builder.locator(".cb-leaf .cb-value").nth(1).fill("金卡")
    await page.wait_for_selector("#segment-builder-preview:has-text('当前匹配 3 位客户')")
    preview = await page.inner_text("#segment-builder-preview")
    assert "赵*" in preview and "赵一" not in preview  # the sample is masked
    # all + not: 金卡 but not 成长 is 孙三 alone
    await builder.locator(".cb-mode").first.select_option("all")
    await builder.locator(".cb-leaf .cb-not input").first.check()
    await page.wait_for_selector("#segment-builder-preview:has-text('当前匹配 1 位客户')")
    await builder.locator(".cb-leaf .cb-not input").first.uncheck()
    await builder.locator(".cb-mode").first.select_option("any")
    await page.wait_for_selector("#segment-builder-preview:has-text('当前匹配 3 位客户')")
    await screenshot(page, "segment-builder")
    # The advanced view shows the same rule as JSON, and edits there come back to the builder.
    await builder.locator(".cb-toggle").click()
    raw = await builder.locator(".cb-raw").input_value()
    assert '"any"' in raw and '"member_level"' in raw
    await builder.locator(".cb-raw").fill('{"all": [{"tag": "爱买家电"}]}')
    await builder.locator(".cb-toggle").click()
    await page.wait_for_selector("#segment-builder .cb-leaf[data-kind=tag]")
    await page.wait_for_selector("#segment-builder-preview:has-text('当前匹配 1 位客户')")
    await page.click("#dialog-save")
    await page.wait_for_selector("#segments-table tr:has-text('成长或金卡') td.count:has-text('1')")
    async with live_server.db() as session:
        segment = (await session.exec(select(Segment))).one()
    assert segment.conditions == {"all": [{"tag": "爱买家电"}]}

    admin = await new_page(1280, 900)
    await staff_login(admin, live_server, "guanli3", PASSWORD)
    await admin.wait_for_url("**/admin/faq")
    await admin.goto(live_server.url + "/admin/rules")
    await admin.click("#care-rule-new")
    await admin.fill("dialog input[name=care-name]", "家电客户久未互动")
    await admin.select_option("dialog select[name=care-kind]", "inactivity")
    await admin.fill("dialog input[name=param-days]", "30")
    await admin.select_option("dialog select[name=care-segment]", str(segment.id))
    template = "{{ name }}您好，{{ days }} 天没见啦，送您 {{ points }} 积分的专属好礼"
    await admin.fill("dialog textarea[name=care-template]", template)
    await admin.wait_for_selector("#care-preview:has-text('赵一您好，30 天没见啦，送您 100 积分的专属好礼')")
    assert "示例客户：赵一" in await admin.inner_text("#care-preview")
    assert "每周最多" in await admin.inner_text("#care-guards")
    await admin.check("dialog label.inline:has-text('企业微信') input")
    await admin.select_option("dialog select[name=care-hour]", "9")
    await screenshot(admin, "care-rule-editor")
    await admin.click("#dialog-save")
    await admin.wait_for_selector("#care-rules tr:has-text('家电客户久未互动') td.results:has-text('尚未发送')")
    async with live_server.db() as session:
        rule = (await session.exec(select(CareRule).where(CareRule.name == "家电客户久未互动"))).one()
    assert (rule.kind, rule.params, rule.segment_id, rule.channels, rule.send_hour) == (
        "inactivity",
        {"days": 30},
        segment.id,
        ["wecom"],
        9,
    )

    await admin.click("#care-rules tr:has-text('家电客户久未互动') button:has-text('发送明细')")
    await admin.wait_for_selector("#deliveries-table:has-text('还没有发送记录')")
