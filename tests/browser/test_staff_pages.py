"""Staff in a real browser: login and lockout, the handoff loop between two people, FAQ editing, dashboard."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlmodel import col, select

from bot.engine import texts
from bot.web.ratelimit import counters
from models import (
    AuditLog,
    Conversation,
    ConversationState,
    Customer,
    CustomerTag,
    FaqEntry,
    Message,
    Sender,
    Tag,
    User,
    UserCreate,
)
from scrm.audit import Actor
from scrm.conversations import AGENT_JOINED
from scrm.db import transaction
from scrm.users import create_user
from tests.browser.conftest import LiveServer, screenshot, staff_login

pytestmark = pytest.mark.browser
MONDAY_10 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai
PASSWORD = "browser-pass-1"
XSS = '<img src=x onerror="window.__xss=1">'


async def make_staff(server: LiveServer, username: str, role: str, **extra: Any) -> User:
    async with transaction(server.db) as session:
        data = UserCreate(username=username, password=PASSWORD, role=role, display_name=username, **extra)
        return await create_user(session, data=data, actor=Actor.system("test"))


async def open_chat(page: Any, server: LiveServer) -> None:
    await page.goto(server.url + "/")
    await page.wait_for_selector("#status:has-text('在线')")


async def ask(page: Any, text: str) -> None:
    await page.fill("#input", text)
    await page.press("#input", "Enter")


async def test_login_wrong_password_throttle_and_csrf(live_server: LiveServer, new_page: Any) -> None:
    await make_staff(live_server, "xiaowang", "agent")
    await make_staff(live_server, "xiaozhao", "agent")
    page = await new_page()

    await staff_login(page, live_server, "xiaowang", "not-my-password")
    await page.wait_for_selector("#login-error:has-text('用户名或密码错误')")
    assert "/login" in page.url

    counters(live_server.app).clock = lambda: 0.0  # the throttle's clock stands still: its 1 s wait holds
    for _ in range(5):
        await staff_login(page, live_server, "xiaozhao", "guessing-wrong")
        await page.wait_for_selector("#login-error:not(:empty)")
    await staff_login(page, live_server, "xiaozhao", PASSWORD)
    await page.wait_for_selector("#login-error:has-text('登录尝试过于频繁')")  # a growing wait, not a lock
    await screenshot(page, "login-throttled")
    async with live_server.db() as session:
        throttled = (await session.exec(select(User).where(User.username == "xiaozhao"))).one()
    assert throttled.locked_until is None  # nothing on the account a stranger could set

    await staff_login(page, live_server, "xiaowang", PASSWORD)
    await page.wait_for_url("**/console")
    await page.wait_for_selector("#me-name:has-text('xiaowang')")

    without_token = await page.evaluate(
        """async () => {
            const r = await fetch('/api/v1/console/presence', {method: 'PUT', credentials: 'same-origin',
                headers: {'Content-Type': 'application/json'}, body: JSON.stringify({presence: 'away'})});
            return [r.status, (await r.json()).code];
        }"""
    )
    assert without_token == [403, "csrf_failed"]
    async with live_server.db() as session:
        assert (await session.exec(select(User.presence).where(User.username == "xiaowang"))).one() == "online"
    with_token = await page.evaluate(
        """async () => {
            const r = await fetch('/api/v1/console/presence', {method: 'PUT', credentials: 'same-origin',
                headers: {'Content-Type': 'application/json', 'X-CSRF-Token': Huike.state.csrf},
                body: JSON.stringify({presence: 'away'})});
            return r.status;
        }"""
    )
    assert with_token == 200
    async with live_server.db() as session:
        assert (await session.exec(select(User.presence).where(User.username == "xiaowang"))).one() == "away"


async def test_visitor_asks_for_a_human_and_an_agent_takes_over_and_replies(
    live_server: LiveServer, new_page: Any, pinned_clock: Any
) -> None:
    pinned_clock.move_to(MONDAY_10)  # within service hours (the server shares the suite's clock)
    agent_user = await make_staff(live_server, "kefu01", "agent")
    visitor = await new_page(420, 760)
    agent = await new_page()

    await staff_login(agent, live_server, "kefu01", PASSWORD)
    await agent.wait_for_url("**/console")
    await agent.wait_for_selector("#ws-status:has-text('实时')")

    await open_chat(visitor, live_server)
    await ask(visitor, "转人工")
    await visitor.wait_for_selector(f"#messages li.out .text:has-text('{texts.HANDOFF_QUEUED[:8]}')")
    async with live_server.db() as session:
        conversation = (await session.exec(select(Conversation))).one()
    assert conversation.state == ConversationState.QUEUED

    # The queue updates live (WebSocket): the conversation appears with its reason and waiting time.
    item = agent.locator(f"#queue-waiting li[data-conversation-id='{conversation.id}']")
    await item.wait_for()
    assert "客户要求转人工" in await item.inner_text() and "等待" in await item.inner_text()
    await screenshot(agent, "console-queue")

    # While waiting, the customer writes again: acknowledged with the queue position, the agent sees it.
    await ask(visitor, "我的订单 20261123001 还没发货")
    await item.locator(".last:has-text('20261123001')").wait_for()

    await item.locator("button.take").click()
    await agent.wait_for_selector("#chat-state:has-text('人工服务中')")
    await visitor.wait_for_selector(f"#messages li.out .text:has-text('{AGENT_JOINED[:8]}')")

    await agent.fill("#reply-input", "您好，我是客服小王，马上为您催单。")
    await agent.press("#reply-input", "Enter")
    reply = visitor.locator("#messages li.out", has_text="马上为您催单")
    await reply.wait_for()
    assert "人工客服" in await reply.inner_text()

    # The customer answers; the agent sees it live. HTML typed by a customer stays text.
    await ask(visitor, XSS + "好的谢谢")
    shown = agent.locator("#messages li.customer .text", has_text="好的谢谢")
    await shown.wait_for()
    assert await shown.inner_text() == XSS + "好的谢谢"
    assert await agent.locator("#messages img").count() == 0
    assert await agent.evaluate("window.__xss") is None

    # An internal note: visible in the console, never to the customer.
    await agent.check("#as-note")
    await agent.fill("#reply-input", "客户比较着急，优先处理")
    await agent.press("#reply-input", "Enter")
    await agent.locator("#messages li.note", has_text="优先处理").wait_for()

    # Tag the customer from the side panel (the SCRM area's API).
    await agent.fill("#tag-input", "催单")
    await agent.press("#tag-input", "Enter")
    await agent.locator("#customer-tags .tag", has_text="催单").wait_for()
    await screenshot(agent, "console-conversation")
    await screenshot(visitor, "webchat-with-agent")

    async with live_server.db() as session:
        rows = (
            await session.exec(
                select(Message).where(Message.conversation_id == conversation.id).order_by(col(Message.id))
            )
        ).all()
        conversation = await session.get_one(Conversation, conversation.id)
    said = [(m.sender, m.agent_id, m.text) for m in rows]
    assert said == [
        (Sender.CUSTOMER, None, "转人工"),
        (Sender.BOT, None, texts.HANDOFF_QUEUED + texts.QUEUE_NEXT.format(position=1)),
        (Sender.CUSTOMER, None, "我的订单 20261123001 还没发货"),
        (Sender.BOT, None, texts.QUEUE_RECEIVED + texts.QUEUE_NEXT.format(position=1)),
        (Sender.SYSTEM, None, AGENT_JOINED),
        (Sender.AGENT, agent_user.id, "您好，我是客服小王，马上为您催单。"),
        (Sender.CUSTOMER, None, XSS + "好的谢谢"),
        (Sender.NOTE, agent_user.id, "客户比较着急，优先处理"),
    ]
    assert conversation.state == ConversationState.AGENT and conversation.agent_id == agent_user.id
    async with live_server.db() as session:
        tagged = (
            await session.exec(
                select(Tag.name).join(CustomerTag, col(CustomerTag.tag_id) == Tag.id)
                .where(CustomerTag.customer_id == conversation.customer_id)
            )
        ).all()
    assert tagged == ["催单"]
    assert "优先处理" not in await visitor.locator("#messages").inner_text()


async def test_admin_edits_an_faq_answer_and_the_next_visitor_gets_it(live_server: LiveServer, new_page: Any) -> None:
    await make_staff(live_server, "boss", "admin")
    admin = await new_page()
    await staff_login(admin, live_server, "boss", PASSWORD)
    await admin.wait_for_url("**/admin/faq")

    await admin.fill("#faq-search", "运费")
    row = admin.locator("#faq-table tbody tr", has_text="运费是怎么计算的？")
    await row.wait_for()
    await row.locator("button.edit").click()
    new_answer = "【运费新规】全场满 59 元包邮，未满收 6 元。"
    await admin.fill("dialog textarea[name=answer]", new_answer)
    await screenshot(admin, "faq-editor")
    await admin.click("#dialog-save")
    await row.locator(".answer", has_text="运费新规").wait_for(timeout=90_000)  # saved once every worker retrained

    # 试一试 shows what the bot would answer now.
    await admin.fill("#try-input", "运费是怎么计算的？")
    await admin.click("#try-submit")
    await admin.wait_for_selector("#try-answer:has-text('运费新规')")
    await screenshot(admin, "faq-list-and-try")

    visitor = await new_page(420, 760)
    await open_chat(visitor, live_server)
    await ask(visitor, "运费是怎么计算的？")
    answer = visitor.locator("#messages li.out .text", has_text="运费新规")
    await answer.wait_for()
    assert await answer.inner_text() == new_answer
    async with live_server.db() as session:
        entry = (await session.exec(select(FaqEntry).where(FaqEntry.question == "运费是怎么计算的？"))).one()
        audit = (await session.exec(select(AuditLog).where(AuditLog.action == "faq.update"))).one()
    assert entry.answer == new_answer and audit.after == {"answer": new_answer} and audit.actor == "boss"


async def test_dashboard_and_supervisor_view_render_our_data(live_server: LiveServer, new_page: Any) -> None:
    await make_staff(live_server, "zhuguan", "supervisor")
    visitor = await new_page(420, 760)
    await open_chat(visitor, live_server)
    await ask(visitor, "运费是怎么计算的？")
    await visitor.wait_for_selector("#messages li.out")
    await ask(visitor, "转人工")
    await visitor.wait_for_selector(f"#messages li.out .text:has-text('{texts.HANDOFF_QUEUED[:8]}')")
    async with transaction(live_server.db) as session:
        customer = (await session.exec(select(Customer))).one()
        customer.name = XSS + "李四"

    supervisor = await new_page()
    await staff_login(supervisor, live_server, "zhuguan", PASSWORD)
    await supervisor.wait_for_url("**/console")
    item = supervisor.locator("#queue-waiting li .name", has_text="李四")
    await item.wait_for()
    assert await item.inner_text() == XSS + "李四"  # supervisors see the name in full, as text
    assert await supervisor.evaluate("window.__xss") is None

    await supervisor.goto(live_server.url + "/admin/dashboard")
    kpis = supervisor.locator("#kpis")
    await kpis.wait_for()
    text = await kpis.inner_text()
    assert "转人工率" in text and "100.0%" in text  # one conversation, handed to a human
    assert await supervisor.locator("#chart-conversations svg circle").count() >= 1
    await screenshot(supervisor, "dashboard")

    # A supervisor may not open the admin-only pages: the API says 403 and the page says so.
    await supervisor.goto(live_server.url + "/admin/users")
    await supervisor.wait_for_selector("text=没有权限")


async def test_admin_writes_a_tag_rule_with_a_preview_of_matching_customers(
    live_server: LiveServer, new_page: Any
) -> None:
    await make_staff(live_server, "boss2", "admin")
    async with transaction(live_server.db) as session:
        for n, stage in enumerate(["成长", "成长", "潜在"]):
            session.add(Customer(name=f"客户{n}", lifecycle_stage=stage))
    admin = await new_page()
    await staff_login(admin, live_server, "boss2", PASSWORD)
    await admin.wait_for_url("**/admin/faq")
    await admin.goto(live_server.url + "/admin/rules")
    await admin.wait_for_selector("#care-rules h2:has-text('关怀规则')")
    await admin.click("#tag-rule-new")
    await admin.fill("dialog input[name=rule-name]", "成长期客户")
    await admin.fill("dialog input[name=rule-tag]", "成长")
    await admin.wait_for_selector("#tag-rule-builder-preview:has-text('尚未设置条件')")
    await admin.select_option("#tag-rule-builder .cb-add", "attr")
    await admin.fill("#tag-rule-builder .cb-leaf .cb-value", "成长")
    await admin.wait_for_selector("#tag-rule-builder-preview:has-text('当前匹配 2 位客户')")
    await screenshot(admin, "tag-rule-editor")
    await admin.click("#dialog-save")
    await admin.locator("#tag-rules tbody tr", has_text="成长期客户").wait_for()
    async with live_server.db() as session:
        audit = (await session.exec(select(AuditLog).where(AuditLog.actor == "boss2"))).all()
    assert [a.action for a in audit] == ["tag_rule.save"] and audit[0].after["name"] == "成长期客户"


async def test_supervisor_writes_a_canned_response_and_an_agent_inserts_it_with_a_shortcut(
    live_server: LiveServer, new_page: Any
) -> None:
    import aiohttp

    await make_staff(live_server, "zhuguan2", "supervisor")
    agent_user = await make_staff(live_server, "kefu02", "agent")
    supervisor = await new_page()
    await staff_login(supervisor, live_server, "zhuguan2", PASSWORD)
    await supervisor.wait_for_url("**/console")
    await supervisor.goto(live_server.url + "/admin/canned")
    await supervisor.click("#canned-new")
    await supervisor.fill("dialog input[name=shortcut]", "wait")
    await supervisor.fill("dialog input[name=title]", "请稍等")
    await supervisor.fill("dialog textarea[name=text]", "正在为您查询，请稍等片刻～")
    await supervisor.click("#dialog-save")
    await supervisor.locator("#canned-table tbody tr", has_text="/wait").wait_for()

    async with aiohttp.ClientSession() as http:
        body = {"text": "转人工", "client_msg_id": "c1"}
        resp = await http.post(live_server.url + "/api/v1/webchat/messages", json=body)
        message_id = (await resp.json())["id"]
    async with live_server.db() as session:
        conversation_id = (await session.get_one(Message, message_id)).conversation_id

    agent = await new_page()
    await staff_login(agent, live_server, "kefu02", PASSWORD)
    await agent.wait_for_url("**/console")
    await agent.locator(f"#queue-waiting li[data-conversation-id='{conversation_id}'] button.take").click()
    await agent.wait_for_selector("#chat-state:has-text('人工服务中')")
    await agent.fill("#reply-input", "/wa")
    await agent.dispatch_event("#reply-input", "input")
    await agent.wait_for_selector("#canned-hint:not([hidden]) >> text=/wait")
    await agent.press("#reply-input", "Enter")  # picks the highlighted canned response
    assert await agent.input_value("#reply-input") == "正在为您查询，请稍等片刻～"
    await agent.press("#reply-input", "Enter")  # sends it
    await agent.locator("#messages li.agent", has_text="请稍等片刻").wait_for()
    async with live_server.db() as session:
        sent = (await session.exec(select(Message).where(Message.sender == Sender.AGENT))).one()
    assert sent.text == "正在为您查询，请稍等片刻～" and sent.agent_id == agent_user.id
