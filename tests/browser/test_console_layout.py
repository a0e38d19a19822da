"""The console in a real browser: fixed-height panes with a long conversation, the waiting count in the
title, and keyboard navigation of the queue and the canned replies."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from models import CannedResponse, Conversation, ConversationState, Customer, Direction, Message, Sender, utcnow
from scrm.db import transaction
from tests.browser.conftest import LiveServer, screenshot, staff_login
from tests.browser.test_staff_pages import PASSWORD, make_staff

pytestmark = pytest.mark.browser


async def conversations(server: LiveServer, agent_id: int | None) -> tuple[int, int]:
    """One conversation of 25 messages the agent owns, and one customer waiting in the queue."""
    async with transaction(server.db) as session:
        mine, waiting = Customer(name="周晓明"), Customer(name="吴芳")
        session.add_all([mine, waiting])
        await session.flush()
        assert mine.id is not None and waiting.id is not None
        long = Conversation(customer_id=mine.id, channel="webchat", app_id="default", external_id="v-long",
                            state=ConversationState.AGENT, agent_id=agent_id)  # fmt: skip
        queued = Conversation(customer_id=waiting.id, channel="webchat", app_id="default", external_id="v-wait",
                              state=ConversationState.QUEUED, queue_reason="human",
                              queued_at=utcnow() - timedelta(minutes=2))  # fmt: skip
        session.add_all([long, queued])
        await session.flush()
        assert long.id is not None and queued.id is not None
        for n in range(25):
            inbound = n % 2 == 0
            session.add(Message(conversation_id=long.id, customer_id=mine.id, channel="webchat",
                                direction=Direction.IN if inbound else Direction.OUT,
                                sender=Sender.CUSTOMER if inbound else Sender.AGENT,
                                agent_id=None if inbound else agent_id,
                                text=f"第 {n + 1} 条消息：我想问一下订单的配送进度，谢谢"))  # fmt: skip
        session.add(Message(conversation_id=queued.id, customer_id=waiting.id, channel="webchat",
                            direction=Direction.IN, sender=Sender.CUSTOMER, text="转人工"))  # fmt: skip
        session.add_all([
            CannedResponse(shortcut="hi", title="问候", text="您好，我是客服小慧，很高兴为您服务。"),
            CannedResponse(shortcut="hold", title="请稍等", text="请稍等，我帮您查询一下。"),
        ])  # fmt: skip
        return long.id, queued.id


async def test_long_conversation_keeps_the_page_fixed_and_the_keyboard_drives_queue_and_canned_replies(
    live_server: LiveServer, new_page: Any
) -> None:
    agent = await make_staff(live_server, "kefu-zhou", "agent")
    long_id, queued_id = await conversations(live_server, agent.id)
    page = await new_page(1280, 800)
    await staff_login(page, live_server, "kefu-zhou", PASSWORD)
    await page.wait_for_url("**/console")
    await page.wait_for_selector(f"#queue-waiting li[data-conversation-id='{queued_id}']")
    assert (await page.title()).startswith("(1) ")  # the waiting count is in the tab title

    # Keyboard: J moves through the queue (waiting first, then mine), Enter opens the focused one.
    await page.keyboard.press("j")
    await page.keyboard.press("j")
    focused = await page.evaluate("document.activeElement.dataset.conversationId")
    assert focused == str(long_id)
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#messages li:has-text('第 25 条消息')")

    sizes = await page.evaluate(
        """() => ({page: document.documentElement.scrollHeight, view: innerHeight,
                   list: [messages.scrollHeight, messages.clientHeight, messages.scrollTop],
                   composer: document.getElementById('reply-input').getBoundingClientRect().bottom})"""
    )
    assert sizes["page"] <= sizes["view"], sizes  # the page never grows with the conversation
    assert sizes["list"][0] > sizes["list"][1], sizes  # the message pane scrolls on its own
    assert sizes["list"][2] + sizes["list"][1] >= sizes["list"][0] - 2, sizes  # … and opens at the newest message
    assert sizes["composer"] <= sizes["view"], sizes  # the reply box stays on screen
    await screenshot(page, "console-long-conversation")

    await page.keyboard.press("r")
    assert await page.evaluate("document.activeElement.id") == "reply-input"
    await page.keyboard.type("/h")
    await page.wait_for_selector("#canned-hint:not([hidden]) div.sel:has-text('/hi')")
    await page.keyboard.press("ArrowDown")
    await page.wait_for_selector("#canned-hint div.sel:has-text('/hold')")
    await page.keyboard.press("Enter")
    assert await page.input_value("#reply-input") == "请稍等，我帮您查询一下。"
