"""工单 pages in a real browser: a supervisor takes a complaint from the list to closed; an agent reaches
the ticket from the console's history and sees the customer masked; a stale version is a clear message."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import col, select

from bot.web.tickets import ticket_policy_key
from models import Conversation, Customer, Direction, Message, Sender
from models.ticket import Ticket, TicketEvent, TicketStatus
from scrm import tickets
from scrm.audit import Actor
from scrm.db import transaction
from tests.browser.conftest import LiveServer, screenshot, staff_login
from tests.browser.test_staff_pages import make_staff

pytestmark = pytest.mark.browser


async def complaint(server: LiveServer, *, name: str = "张三丰", agent_id: int | None = None) -> Ticket:
    """A customer who complained on the web chat, with the conversation the ticket came from."""
    async with transaction(server.db) as session:
        customer = Customer(name=name, phone="13812345678", member_level="金卡", points=320)
        session.add(customer)
        await session.flush()
        assert customer.id is not None
        conversation = Conversation(customer_id=customer.id, channel="webchat", app_id="default", external_id="v-1",
                                    agent_id=agent_id, state="agent" if agent_id else "bot")  # fmt: skip
        session.add(conversation)
        await session.flush()
        assert conversation.id is not None
        for sender, direction, text in [
            (Sender.CUSTOMER, Direction.IN, "我要投诉，快递三天了还没到，电话 13812345678"),
            (Sender.BOT, Direction.OUT, "非常抱歉给您带来不好的体验，我们一定认真处理。"),
        ]:
            session.add(Message(conversation_id=conversation.id, customer_id=customer.id, channel="webchat",
                                direction=direction, sender=sender, text=text))  # fmt: skip
        ticket = await tickets.open_ticket(
            session, policy=server.app[ticket_policy_key], customer_id=customer.id, actor=Actor.system("bot"),
            description="快递三天了还没到，物流一直不更新", channel="webchat", conversation_id=conversation.id,
            order_no="SO2026112300017", subject="快递未到",
        )  # fmt: skip
        tickets.take_events(session)
        return ticket


async def test_supervisor_takes_a_complaint_from_the_list_to_closed_with_a_root_cause(
    live_server: LiveServer, new_page: Any
) -> None:
    await make_staff(live_server, "zhuguan", "supervisor")
    agent = await make_staff(live_server, "kefu-li", "agent")
    ticket = await complaint(live_server)
    assert ticket.status == TicketStatus.TRIAGED and ticket.assignee_id is None  # nobody online: 待分配
    page = await new_page(1280, 800)
    await staff_login(page, live_server, "zhuguan", "browser-pass-1")
    await page.wait_for_url("**/console")
    await page.click(".topnav a:has-text('工单')")
    await page.wait_for_url("**/admin/tickets")

    await page.click(".tabs .tab[data-view='unassigned']")
    row = page.locator(f"#tickets-table tr[data-ticket-id='{ticket.id}']")
    await row.wait_for()
    text = await row.inner_text()
    assert "张三丰" in text and "物流配送" in text and "待分配" in text and "未分配" in text
    assert await row.locator(".badge.sla").inner_text() != ""
    await page.click(".tabs .tab[data-view='breached']")
    await page.wait_for_selector("#tickets-table td:has-text('没有符合条件的工单')")
    await page.click(".tabs .tab[data-view='unassigned']")
    await row.wait_for()
    await screenshot(page, "tickets-list")

    await row.locator("a.ticket-link").click()
    await page.wait_for_url(f"**/admin/tickets/{ticket.id}")
    await page.wait_for_selector("#ticket-messages li.customer:has-text('快递三天了还没到')")
    assert "13812345678" in await page.inner_text("#ticket-customer")  # a supervisor sees the full number
    assert "创建工单" in await page.inner_text("#ticket-events")

    await page.click("#act-assign")
    await page.select_option("dialog select[name=assignee]", str(agent.id))
    await page.click("#dialog-save")
    await page.wait_for_selector("#ticket-status:has-text('已分配')")
    await page.click("#act-start")
    await page.wait_for_selector("#ticket-status:has-text('处理中')")

    await page.click("#act-resolve")
    await page.click("#dialog-save")  # nothing chosen: the form says what is missing, nothing is sent
    await page.wait_for_selector("dialog .error:has-text('请填写处理说明')")
    await page.fill("dialog textarea[name=note]", "已联系快递加急派送，今天送达")
    await page.select_option("dialog select[name=resolution_code]", "reshipped")
    await page.select_option("dialog select[name=root_cause]", "快递延误/丢件")
    await page.click("#dialog-save")
    await page.wait_for_selector("#ticket-status:has-text('已解决')")
    await page.wait_for_selector("#ticket-survey:has-text('等待客户评价')")

    # Someone else changes the ticket behind this page: the next action is refused with a clear message.
    async with transaction(live_server.db) as session:
        fresh = await tickets.get_ticket(session, ticket.id or 0)
        someone = Actor(id=agent.id, name="kefu-li", role="agent")
        policy = live_server.app[ticket_policy_key]
        await tickets.add_to_ticket(session, policy=policy, ticket=fresh, actor=someone, text="客户来电确认已收到")
    await page.click("#act-close")
    await page.click("#dialog-save")
    await page.wait_for_selector("#ticket-conflict:has-text('已被他人修改')")
    await screenshot(page, "ticket-conflict")
    await page.click("#ticket-conflict button:has-text('刷新工单')")
    await page.wait_for_selector("#ticket-events:has-text('客户来电确认已收到')")

    await page.click("#act-close")
    assert await page.input_value("dialog select[name=root_cause]") == "快递延误/丢件"  # kept from resolving
    await page.click("#dialog-save")
    await page.wait_for_selector("#ticket-status:has-text('已关闭')")
    await page.wait_for_selector("#act-reopen")
    history = await page.inner_text("#ticket-events")
    assert "处理中 → 已解决" in history and "已解决 → 已关闭" in history
    await screenshot(page, "ticket-closed")

    async with live_server.db() as session:
        done = await session.get(Ticket, ticket.id)
        assert done is not None
        assert (done.status, done.root_cause, done.resolution_code) == ("closed", "快递延误/丢件", "reshipped")
        assert done.assignee_id == agent.id
        actors = (await session.exec(select(TicketEvent.actor).where(col(TicketEvent.ticket_id) == ticket.id))).all()
    assert actors.count("zhuguan") >= 4  # assigned, started, resolved, closed: all by the supervisor


async def test_agent_opens_the_ticket_from_the_console_history_and_claims_it(
    live_server: LiveServer, new_page: Any
) -> None:
    agent = await make_staff(live_server, "kefu-zhao", "agent")
    ticket = await complaint(live_server, agent_id=agent.id)
    page = await new_page(1280, 800)
    await staff_login(page, live_server, "kefu-zhao", "browser-pass-1")
    await page.wait_for_url("**/console")
    await page.goto(live_server.url + f"/console#c={ticket.conversation_id}")
    link = page.locator(f"#timeline li[data-ticket-id='{ticket.id}'] a.ticket-link")
    await link.wait_for()
    await link.click()
    await page.wait_for_url(f"**/admin/tickets/{ticket.id}")
    card = await page.locator("#ticket-customer").inner_text()
    assert "张**" in card and "13812345678" not in card and "个人信息已脱敏" in card
    assert "13812345678" not in await page.inner_text("#ticket-messages")
    assert await page.locator("#act-assign").count() == 0  # agents claim; only supervisors assign others
    await page.click("#act-claim")
    await page.wait_for_selector("#ticket-status:has-text('已分配')")
    await page.wait_for_selector("#act-resolve")
    await screenshot(page, "ticket-agent")

    await page.goto(live_server.url + "/admin/tickets")
    await page.wait_for_selector(".tabs .tab.active[data-view='mine']")
    await page.wait_for_selector(f"#tickets-table tr[data-ticket-id='{ticket.id}']:has-text('kefu-zhao')")
