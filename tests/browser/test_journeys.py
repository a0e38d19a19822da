"""One conversation across every flow, in real browsers: the customer's widget and a staff console open at
the same time (two browser contexts), each journey asserting what each person sees and what the database
holds. The journeys are the reproductions of the issue "one conversation across every flow"."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from bot.engine import texts
from bot.keys import bus_key, engine_key
from bot.web.console import expire_presence
from models import Conversation, ConversationState, Message, Presence, Sender, SurveyResponse, User
from models.ticket import Ticket, TicketStatus
from scrm import presence, tickets
from scrm.audit import Actor
from scrm.db import transaction
from tests.browser.conftest import LiveServer, screenshot, staff_login
from tests.browser.test_staff_pages import PASSWORD, ask, make_staff, open_chat

pytestmark = pytest.mark.browser
MONDAY_10 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # within service hours (Shanghai)
SATURDAY_NOON = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)


def pin_clock(pinned_clock: Any, moment: datetime) -> None:
    """Move the suite's clock (server and tests share it): staff heartbeats and the engine agree."""
    pinned_clock.move_to(moment)


async def console(page: Any, server: LiveServer, username: str) -> None:
    await staff_login(page, server, username, PASSWORD)
    await page.wait_for_selector("#me-name")  # signed in (admins land on the FAQ page)
    if not page.url.endswith("/console"):
        await page.goto(server.url + "/console")
    await page.wait_for_selector("#ws-status:has-text('实时')")


async def bot_says(page: Any, text: str) -> Any:
    reply = page.locator("#messages li.out .text", has_text=text).last
    await reply.wait_for()
    return reply


async def resolve(server: LiveServer, ticket_id: int, actor: Actor, note: str) -> None:
    """Resolve the ticket as the tickets page would: commit, then announce (the widget gets the survey)."""
    policy = server.app[engine_key].services.tickets
    assert policy is not None
    async with transaction(server.db) as session:
        ticket = await session.get_one(Ticket, ticket_id)
        await tickets.resolve(session, policy=policy, ticket=ticket, actor=actor, note=note)
        events = tickets.take_events(session)
    for topic, data in events:
        await server.app[bus_key].publish(topic, data)


async def the_conversation(server: LiveServer) -> Conversation:
    async with server.db() as session:
        return (await session.exec(select(Conversation).order_by(col(Conversation.id).desc()))).first()


async def test_handoff_inside_the_complaint_flow_is_a_command_not_an_order_number(
    live_server: LiveServer, new_page: Any, pinned_clock: Any
) -> None:
    pin_clock(pinned_clock, MONDAY_10)
    await make_staff(live_server, "kefu-a", "agent")
    visitor, agent = await new_page(420, 760), await new_page()
    await console(agent, live_server, "kefu-a")
    await open_chat(visitor, live_server)

    await ask(visitor, "我要投诉")
    await bot_says(visitor, "订单号")
    await ask(visitor, "转人工")
    await bot_says(visitor, texts.HANDOFF_QUEUED[:10])
    shown = await visitor.locator("#messages li.out .text").all_inner_texts()
    assert not any("格式好像不对" in t for t in shown)
    assert texts.QUEUE_NEXT.format(position=1) in shown[-1]  # an agent is present and free

    conversation = await the_conversation(live_server)
    assert conversation.state == ConversationState.QUEUED and conversation.flow is None
    item = agent.locator(f"#queue-waiting li[data-conversation-id='{conversation.id}']")
    await item.wait_for()
    assert "客户要求转人工" in await item.inner_text()
    assert await visitor.locator("#messages li .time").count() >= 4  # every bubble has its time
    await screenshot(visitor, "journey-1-complaint-handoff-widget")
    await screenshot(agent, "journey-1-complaint-handoff-console")


async def test_a_survey_answer_while_an_agent_owns_the_chat_is_recorded_shown_and_reopens_the_ticket(
    live_server: LiveServer, new_page: Any, pinned_clock: Any
) -> None:
    pin_clock(pinned_clock, MONDAY_10)
    agent_user = await make_staff(live_server, "kefu-b", "agent", skills="售后")
    boss = await make_staff(live_server, "zhuguan-b", "admin")
    visitor, agent = await new_page(420, 760), await new_page()
    await console(agent, live_server, "kefu-b")
    await open_chat(visitor, live_server)

    # Complaint -> ticket.
    await ask(visitor, "手机黑屏了，质量太差，我要投诉，订单号 DD2026112300001")
    await bot_says(visitor, "联系您")
    await ask(visitor, "1")
    await bot_says(visitor, "确认")
    await ask(visitor, "确认")
    await bot_says(visitor, "已受理")
    async with live_server.db() as session:
        ticket = (await session.exec(select(Ticket))).one()

    # 转人工 -> the agent takes over.
    await ask(visitor, "转人工")
    await bot_says(visitor, texts.HANDOFF_QUEUED[:10])
    conversation = await the_conversation(live_server)
    await agent.locator(f"#queue-waiting li[data-conversation-id='{conversation.id}'] button.take").click()
    await agent.wait_for_selector("#chat-state:has-text('人工服务中')")

    # The agent writes: the customer sees it coming.
    await agent.fill("#reply-input", "您好，我看一下工单")
    await visitor.wait_for_selector("#typing:has-text('客服正在输入')")
    await screenshot(visitor, "journey-2-agent-typing")
    await agent.press("#reply-input", "Enter")
    await bot_says(visitor, "我看一下工单")
    assert await visitor.locator("#typing").count() == 0

    # The ticket is resolved elsewhere: the widget shows the 1–5 question.
    await resolve(live_server, ticket.id or 0, Actor(id=boss.id, name="boss", role="admin"), "已为您更换新机")
    await bot_says(visitor, "1–5 分")

    answer = "2分，黑屏的问题根本没人跟我确认，不满意"
    await ask(visitor, answer)
    await bot_says(visitor, "重新打开")  # the customer is answered, with what is true
    await agent.locator("#messages li.customer .text", has_text="黑屏的问题").wait_for()
    note = agent.locator("#messages li.note .text", has_text="满意度评价：2 分")
    await note.wait_for()
    assert ticket.number in await note.inner_text()
    assert "满意度评价" not in await visitor.locator("#messages").inner_text()  # the note is for the agent only
    await screenshot(visitor, "journey-2-survey-with-agent-widget")
    await screenshot(agent, "journey-2-survey-with-agent-console")

    async with live_server.db() as session:
        [response] = (await session.exec(select(SurveyResponse))).all()
        row = await session.get_one(Ticket, ticket.id)
        conversation = await session.get_one(Conversation, conversation.id)
    assert (response.score, response.resolved, response.ticket_id) == (2, False, ticket.id)
    assert row.status == TicketStatus.REOPENED and row.escalation_level == 1
    assert conversation.state == ConversationState.AGENT and conversation.agent_id == agent_user.id


async def test_a_low_score_escalates_to_someone_and_the_console_shows_the_badge(
    live_server: LiveServer, new_page: Any, pinned_clock: Any
) -> None:
    pin_clock(pinned_clock, MONDAY_10)
    await make_staff(live_server, "guanliyuan", "admin")
    visitor, admin = await new_page(420, 760), await new_page()
    await console(admin, live_server, "guanliyuan")  # the only one online: no supervisor exists
    await open_chat(visitor, live_server)
    await ask(visitor, "屏幕碎了，我要投诉，订单号 DD2026112300002")
    await bot_says(visitor, "联系您")
    await ask(visitor, "1")
    await bot_says(visitor, "确认")
    await ask(visitor, "确认")
    await bot_says(visitor, "已受理")
    async with live_server.db() as session:
        ticket = (await session.exec(select(Ticket))).one()
    await resolve(live_server, ticket.id or 0, Actor.system("test"), "已处理")
    await bot_says(visitor, "1–5 分")
    await ask(visitor, "1")
    await bot_says(visitor, "升级给主管优先处理")

    async with live_server.db() as session:
        ticket = (await session.exec(select(Ticket))).one()
        admin_id = (await session.exec(select(User.id).where(User.username == "guanliyuan"))).one()
    assert ticket.escalated_to_id == admin_id  # supervisor -> any supervisor -> admin: the admin is there
    badge = admin.locator("#escalated")
    await admin.wait_for_selector("#escalated-count:has-text('1')")
    await badge.locator("summary").click()
    assert "升级给我" in await admin.locator("#escalated-list").inner_text()
    assert ticket.number in await admin.locator("#escalated-list").inner_text()
    await screenshot(admin, "journey-3-escalation-badge")


async def test_every_message_while_queued_is_acknowledged_and_gibberish_is_not_greeted(
    live_server: LiveServer, new_page: Any, pinned_clock: Any
) -> None:
    pin_clock(pinned_clock, MONDAY_10)
    await make_staff(live_server, "kefu-d", "agent")
    visitor, agent = await new_page(420, 760), await new_page()
    await console(agent, live_server, "kefu-d")
    await open_chat(visitor, live_server)

    await ask(visitor, "asdfghjkl")
    reply = await bot_says(visitor, "没有理解")
    assert await reply.inner_text() == texts.FALLBACK
    await ask(visitor, "转人工")
    await bot_says(visitor, texts.HANDOFF_QUEUED[:10])
    for n, text in enumerate(["在吗", "我的订单怎么还没到", "？？？"], start=1):
        await ask(visitor, text)
        await visitor.wait_for_function(
            "n => [...document.querySelectorAll('#messages li.out .text')]"
            ".filter(e => e.textContent.startsWith('已收到，客服接入后')).length >= n", arg=n,
        )  # fmt: skip
    acks = [t for t in await visitor.locator("#messages li.out .text").all_inner_texts() if t.startswith("已收到")]
    assert acks == [texts.QUEUE_RECEIVED + texts.QUEUE_NEXT.format(position=1)] * 3
    conversation = await the_conversation(live_server)
    item = agent.locator(f"#queue-waiting li[data-conversation-id='{conversation.id}']")
    await item.locator(".last:has-text('？？？')").wait_for()
    await screenshot(visitor, "journey-4-queued-acknowledged")

    # Outside service hours: when agents are back, and 留言 becomes a ticket.
    pin_clock(pinned_clock, SATURDAY_NOON)
    await ask(visitor, "周末有人吗")
    closed = await bot_says(visitor, "非工作时间")
    assert "11月30日 09:00" in await closed.inner_text()
    await ask(visitor, "留言 快递三天没动了，周一请联系我")
    left = await bot_says(visitor, "已收到您的留言")
    async with live_server.db() as session:
        ticket = (await session.exec(select(Ticket))).one()
        inbound = (await session.exec(select(Message).where(Message.direction == "in"))).all()
        answered = set((await session.exec(select(Message.reply_to_id).where(Message.sender == Sender.BOT))).all())
    assert ticket.number in await left.inner_text() and ticket.description == "快递三天没动了，周一请联系我"
    assert "11月30日 11:00 前联系您" in await left.inner_text()  # Saturday: two working hours from Monday 09:00
    assert {m.id for m in inbound} <= answered  # every customer turn got a reply or an acknowledgement
    assert (await the_conversation(live_server)).state == ConversationState.BOT
    await screenshot(visitor, "journey-4-out-of-hours-message")


async def test_presence_ends_when_the_console_is_gone_and_transfers_only_go_to_present_people(
    live_server: LiveServer, new_page: Any
) -> None:
    await make_staff(live_server, "kefu-e", "agent")
    await make_staff(live_server, "kefu-f", "agent")
    visitor, first, second = await new_page(420, 760), await new_page(), await new_page()
    await console(first, live_server, "kefu-e")
    await console(second, live_server, "kefu-f")
    async with live_server.db() as session:
        gone = (await session.exec(select(User).where(User.username == "kefu-f"))).one()
    assert gone.presence == Presence.ONLINE and gone.last_seen_at is not None

    await second.context.close()  # the browser is closed without logging out
    grace = live_server.app[engine_key].services.settings.presence_grace
    async with transaction(live_server.db) as session:  # the heartbeat stopped a grace period ago
        await presence.touch(session, gone.id or 0, now=datetime.now(UTC) - grace - timedelta(seconds=1))
    await expire_presence(live_server.app)  # the scheduled job
    async with live_server.db() as session:
        assert (await session.get_one(User, gone.id)).presence == Presence.OFFLINE

    await open_chat(visitor, live_server)
    await ask(visitor, "转人工")
    await bot_says(visitor, texts.HANDOFF_QUEUED[:10])
    conversation = await the_conversation(live_server)
    await first.locator(f"#queue-waiting li[data-conversation-id='{conversation.id}'] button.take").click()
    await first.wait_for_selector("#chat-state:has-text('人工服务中')")
    option = first.locator(f"#transfer-to option[value='{gone.id}']")
    await first.wait_for_function(f"document.querySelector(\"#transfer-to option[value='{gone.id}']\")?.disabled")
    assert "离线" in await option.inner_text()
    await screenshot(first, "journey-5-presence-offline")


async def test_first_response_counts_from_entering_the_queue_to_the_agent_reply(
    live_server: LiveServer, new_page: Any
) -> None:
    await make_staff(live_server, "zhuguan-g", "supervisor")
    visitor, lead = await new_page(420, 760), await new_page()
    await console(lead, live_server, "zhuguan-g")
    await open_chat(visitor, live_server)
    await ask(visitor, "转人工")
    await bot_says(visitor, texts.HANDOFF_QUEUED[:10])
    conversation = await the_conversation(live_server)
    async with transaction(live_server.db) as session:  # entered the queue 40 s before the agent answers
        row = await session.get_one(Conversation, conversation.id)
        assert row.queued_at is not None
        row.queued_at = row.queued_at - timedelta(seconds=40)
    await lead.locator(f"#queue-waiting li[data-conversation-id='{conversation.id}'] button.take").click()
    await lead.wait_for_selector("#chat-state:has-text('人工服务中')")
    await lead.fill("#reply-input", "您好，我来帮您处理")
    await lead.press("#reply-input", "Enter")
    await bot_says(visitor, "我来帮您处理")

    async with live_server.db() as session:
        row = await session.get_one(Conversation, conversation.id)
        reply = (await session.exec(select(Message).where(Message.sender == Sender.AGENT))).one()
    assert row.queued_at is not None
    expected = round((reply.created_at.replace(tzinfo=UTC) - row.queued_at.replace(tzinfo=UTC)).total_seconds())
    assert 40 <= expected < 60
    await lead.goto(live_server.url + "/admin/dashboard")
    kpis = lead.locator("#kpis")
    await kpis.wait_for()
    text = await kpis.inner_text()
    shown = re.search(r"平均首次响应\s*(\d+) 秒", text)
    assert shown is not None, text
    assert abs(int(shown.group(1)) - expected) <= 1
    await screenshot(lead, "journey-7-first-response")


async def test_a_photo_sent_in_the_complaint_flow_reaches_the_console(
    live_server: LiveServer, new_page: Any, pinned_clock: Any, tmp_path: Any
) -> None:
    pin_clock(pinned_clock, MONDAY_10)
    await make_staff(live_server, "kefu-h", "agent")
    visitor, agent = await new_page(420, 760), await new_page()
    await console(agent, live_server, "kefu-h")
    await open_chat(visitor, live_server)
    await ask(visitor, "我要投诉，订单号 DD2026112300003")
    await bot_says(visitor, "照片")  # the flow asks for one
    from tests.web.test_conversation_seams import png

    photo = tmp_path / "screen.png"
    photo.write_bytes(png(40, 30))
    await visitor.set_input_files("#photo", str(photo))
    await bot_says(visitor, "已收到照片")
    await visitor.locator("#messages li.in img.photo").wait_for()
    assert await visitor.evaluate("document.querySelector('#messages li.in img.photo').naturalWidth") == 40
    await ask(visitor, "转人工")
    await bot_says(visitor, texts.HANDOFF_QUEUED[:10])
    conversation = await the_conversation(live_server)
    await agent.locator(f"#queue-waiting li[data-conversation-id='{conversation.id}']").click()
    image = agent.locator("#messages li.customer img.photo")
    await image.wait_for()
    await agent.wait_for_function("document.querySelector('#messages li.customer img.photo').naturalWidth === 40")
    await screenshot(visitor, "journey-photo-widget")
    await screenshot(agent, "journey-photo-console")
    async with live_server.db() as session:
        [row] = (await session.exec(select(Message).where(Message.kind == "image"))).all()
    assert row.payload["image"]["type"] == "image/png"
