"""Agents never see a customer's phone or name in full, wherever it appears (review issue 15, finding 3).

The reviewer found full data in ticket `contact_phone` / `description`, the customer timeline (care messages
carry the full name), the console thread, and phones written as +86…, 139-…, 139 …, or in full-width digits.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from typing import Any

import orjson
import pytest

from bot.keys import db_key
from models import Customer, Message
from models.scrm import CareDelivery, CareKind, CareRule
from scrm.db import transaction
from scrm.privacy import mask_text
from tests.conftest import login_as
from tests.web.conftest import conversation_of, make_user, sign_in

NAME, PHONE = "钱多多", "13912345678"
WRITTEN = ["13912345678", "+8613912345678", "139-1234-5678", "139 1234 5678", "１３９１２３４５６７８",
           "0086 139 1234 5678", "+86 139-1234-5678", "１３９－１２３４－５６７８"]  # fmt: skip


def strings(payload: Any) -> list[str]:
    if isinstance(payload, str):
        return [] if re.match(r"\d{4}-\d\d-\d\dT", payload) else [payload]  # timestamps are not the customer's
    if isinstance(payload, dict):
        return [s for v in payload.values() for s in strings(v)]
    if isinstance(payload, list):
        return [s for v in payload for s in strings(v)]
    return []


def leaks(payload: Any) -> list[str]:
    """What in a response still gives the customer away: the name, or the phone's hidden digits in any writing."""
    found = set()
    for text in strings(payload):
        digits = re.sub(r"[\s\-－.]", "", unicodedata.normalize("NFKC", text))
        found |= {NAME} if NAME in text else set()
        found |= {PHONE} if "1391234" in digits or "12345678" in digits else set()
    return sorted(found)


@pytest.mark.parametrize("written", WRITTEN)
def test_every_written_form_of_a_mobile_number_is_masked(written: str) -> None:
    masked = mask_text(f"我是{NAME}，电话{written}，谢谢", names=[NAME])
    assert leaks(masked) == [] and "5678" in unicodedata.normalize("NFKC", masked) and "钱**" in masked


async def _customer(client: Any, conversation_customer: int | None = None) -> int:
    async with transaction(client.app[db_key]) as session:
        customer = await session.get(Customer, conversation_customer) if conversation_customer else Customer()
        assert customer is not None
        customer.name, customer.phone = NAME, PHONE
        session.add(customer)
        await session.flush()
        assert customer.id is not None
        return customer.id


async def test_tickets_are_masked_for_agents(client: Any) -> None:
    customer_id = await _customer(client)
    agent = await login_as(client, "agent")
    body = {"customer_id": customer_id, "description": f"我是{NAME}，快递丢了，请打 +86 139-1234-5678 联系我",
            "subject": f"{NAME} 的投诉", "contact_phone": "13912345678", "contact_preference": "phone"}  # fmt: skip
    created = await client.post("/api/v1/tickets", json=body, headers=agent)
    assert created.status == 201, await created.text()
    ticket = await created.json()
    assert ticket["contact_phone"] == "139****5678" and leaks(ticket) == []
    note = {"text": "客户又说：１３９１２３４５６７８"}
    noted = await client.post(f"/api/v1/tickets/{ticket['id']}/notes", json=note, headers=agent)
    assert noted.status == 201 and leaks(await noted.json()) == []
    for path in ("/api/v1/tickets", f"/api/v1/tickets/{ticket['id']}", f"/api/v1/tickets?customer_id={customer_id}"):
        seen = await (await client.get(path)).json()
        assert leaks(seen) == [], (path, leaks(seen))

    client.session.cookie_jar.clear()
    await login_as(client, "supervisor")
    full = await (await client.get(f"/api/v1/tickets/{ticket['id']}")).json()
    assert full["ticket"]["contact_phone"] == PHONE and NAME in full["ticket"]["description"]


async def test_customer_timeline_masks_messages_and_care_texts_for_agents(client: Any, visitor: Any) -> None:
    v = await visitor()
    said = await v.says(f"我叫{NAME}，手机１３９１２３４５６７８")
    customer_id = await _customer(client, (await conversation_of(client, said["id"])).customer_id)
    async with transaction(client.app[db_key]) as session:
        rule = CareRule(name="生日", kind=CareKind.BIRTHDAY, template="{name}，生日快乐")
        session.add(rule)
        await session.flush()
        assert rule.id is not None
        session.add(CareDelivery(rule_id=rule.id, customer_id=customer_id, period="2026", text=f"{NAME}，生日快乐"))
    agent = await login_as(client, "agent")
    timeline = await (await client.get(f"/api/v1/customers/{customer_id}/timeline", headers=agent)).json()
    assert {i["type"] for i in timeline["items"]} >= {"message", "care"}
    assert leaks(timeline) == [] and "钱**，生日快乐" in [i.get("text") for i in timeline["items"]]
    client.session.cookie_jar.clear()
    await login_as(client, "supervisor")
    full = await (await client.get(f"/api/v1/customers/{customer_id}/timeline")).json()
    assert f"{NAME}，生日快乐" in [i.get("text") for i in full["items"]]


async def next_message(ws: Any, message_id: int) -> dict[str, Any]:
    while True:
        frame = orjson.loads((await asyncio.wait_for(ws.receive(), 10)).data)
        if frame.get("type") == "event" and frame["topic"] == "message" and frame["data"]["id"] == message_id:
            return dict(frame["data"])


async def test_console_thread_queue_and_live_pushes_are_masked_for_agents(
    client: Any, visitor: Any, browsers: Any
) -> None:
    v = await visitor()
    first = await v.says("转人工")
    conversation = await conversation_of(client, first["id"])
    await _customer(client, conversation.customer_id)
    agent_user = await make_user(client, "agent")
    agent = browsers(client)
    await sign_in(agent, agent_user.username)
    ws = await agent.ws_connect("/api/v1/console/ws")
    assert orjson.loads((await ws.receive()).data)["type"] == "hello"

    said = await v.says(f"我是{NAME}，电话 139 1234 5678")
    pushed = await next_message(ws, said["id"])
    assert pushed["text"] == "我是钱**，电话 139 **** 5678"
    await ws.close()

    detail = await (await agent.get(f"/api/v1/console/conversations/{conversation.id}")).json()
    assert leaks(detail) == [], leaks(detail)
    queue = await (await agent.get("/api/v1/console/queue")).json()
    assert leaks(queue) == [] and queue["waiting"][0]["last_text"] == "我是钱**，电话 139 **** 5678"
    suggestions = await (await agent.get(f"/api/v1/console/conversations/{conversation.id}/suggestions")).json()
    assert leaks(suggestions) == []
    async with client.app[db_key]() as session:  # stored in full: masking is for the reader, not the record
        assert (await session.get_one(Message, said["id"])).text == f"我是{NAME}，电话 139 1234 5678"
