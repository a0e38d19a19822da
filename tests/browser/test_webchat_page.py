"""The web-chat page: a visitor asks in their own words and sees the FAQ answer; the database holds both."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import col, select

from models import ChannelIdentity, Conversation, Direction, FaqEntry, Message
from scrm.audit import Actor
from scrm.db import transaction
from scrm.faq import update_faq
from tests.browser.conftest import LiveServer

pytestmark = pytest.mark.browser


async def ask(page: Any, text: str) -> None:
    await page.fill("#input", text)
    await page.press("#input", "Enter")


async def test_visitor_asks_in_other_words_and_sees_the_faq_answer(live_server: LiveServer, new_page: Any) -> None:
    async with live_server.db() as session:
        entry = (await session.exec(select(FaqEntry).where(FaqEntry.question == "运费是怎么计算的？"))).one()
    page = await new_page(420, 760)
    await page.goto(live_server.url + "/")
    await page.wait_for_selector("#status:has-text('在线')")
    await ask(page, "运费的收费标准是啥")
    answer = page.locator("#messages li.out .text", has_text=entry.answer[:20])
    await answer.wait_for()
    assert await answer.inner_text() == entry.answer

    async with live_server.db() as session:
        rows = (await session.exec(select(Message).order_by(col(Message.id)))).all()
        conversation = await session.get_one(Conversation, rows[0].conversation_id)
        identity = (await session.exec(select(ChannelIdentity))).one()
    expected = [(Direction.IN, "运费的收费标准是啥"), (Direction.OUT, entry.answer)]
    assert [(r.direction, r.text) for r in rows] == expected
    assert rows[0].customer_id == rows[1].customer_id == conversation.customer_id == identity.customer_id
    assert rows[1].conversation_id == conversation.id and rows[1].reply_to_id == rows[0].id
    cookie = next(c for c in await page.context.cookies() if c["name"] == "huike_visitor")
    assert cookie["value"].split(".")[0] == identity.external_id and cookie["httpOnly"]


async def test_html_in_an_faq_answer_is_shown_as_text(live_server: LiveServer, new_page: Any) -> None:
    from bot.faq_sync import load_faq_docs
    from bot.keys import engine_key
    from models import FaqEntryUpdate

    payload = '<img src=x onerror="window.__xss=1">运费满99元包邮'
    async with transaction(live_server.db) as session:
        entry = (await session.exec(select(FaqEntry).where(FaqEntry.question == "运费是怎么计算的？"))).one()
        await update_faq(session, faq_id=entry.id or 0, data=FaqEntryUpdate(answer=payload), actor=Actor.system("t"))
    docs, _ = await load_faq_docs(live_server.db)
    live_server.app[engine_key].services.faq.replace(docs)

    page = await new_page(420, 760)
    await page.goto(live_server.url + "/")
    await ask(page, entry.question)
    bubble = page.locator("#messages li.out .text", has_text="运费满99元包邮")
    await bubble.wait_for()
    assert await bubble.inner_text() == payload
    assert await page.locator("#messages img").count() == 0
    assert await page.evaluate("window.__xss") is None


async def test_an_answer_lost_on_the_network_is_fetched_again_never_answered_twice(
    live_server: LiveServer, new_page: Any
) -> None:
    """A flaky mobile network: the server stores and answers, the browser never hears back; the widget
    resends with the same client_msg_id and shows the first answer; the database holds one of each."""
    page = await new_page(420, 760)
    await page.route_web_socket("**/api/v1/webchat/ws*", lambda ws: ws.close())  # no WebSocket: HTTP path
    sent: list[str] = []

    async def lose_the_first_answer(route: Any) -> None:
        if route.request.method != "POST":
            await route.continue_()
            return
        sent.append(route.request.post_data_json["client_msg_id"])
        if len(sent) == 1:
            await route.fetch()  # the server stores and answers …
            await route.abort("connectionreset")  # … and the answer never arrives
        else:
            await route.continue_()

    await page.route("**/api/v1/webchat/messages", lose_the_first_answer)
    await page.goto(live_server.url + "/")
    await ask(page, "运费怎么算")
    answer = page.locator("#messages li.out .text")
    await answer.first.wait_for()

    assert len(sent) == 2 and sent[0] == sent[1]  # resent as the same message
    async with live_server.db() as session:
        rows = (await session.exec(select(Message).order_by(col(Message.id)))).all()
    assert [r.direction for r in rows] == [Direction.IN, Direction.OUT]
    assert rows[0].text == "运费怎么算" and await answer.count() == 1
    assert await answer.inner_text() == rows[1].text
