"""Agent console: a customer asks for a human, an agent takes over, replies; the bot stays silent."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest

from bot.app import create_app
from bot.engine import texts
from bot.faq_sync import load_faq_docs
from bot.keys import db_key, redis_key
from config.settings import Settings
from models import (
    AuditLog,
    CannedResponse,
    Conversation,
    ConversationState,
    Customer,
    FaqConfirmation,
    Message,
    Sender,
)
from scrm.conversations import AGENT_JOINED
from scrm.db import transaction
from tests.web.conftest import conversation_of, make_user, outbox_for, rows, sign_in


async def queued_conversation(visitor: Any) -> tuple[Any, int]:
    v = await visitor()
    posted = await v.says("转人工")
    return v, posted["id"]


async def test_handoff_loop_take_over_reply_and_the_bot_stays_silent(client: Any, staff: Any, visitor: Any) -> None:
    v, first_id = await queued_conversation(visitor)
    conversation = await conversation_of(client, first_id)
    assert conversation.state == ConversationState.QUEUED

    agent = await staff("agent")
    queue = await (await agent.get("/console/queue")).json()
    [waiting] = queue["waiting"]
    assert waiting["conversation_id"] == conversation.id
    assert waiting["reason"] == "human" and waiting["reason_label"] and waiting["waiting_seconds"] >= 0

    # While queued, the customer writes again: stored, shown to the console, acknowledged with the queue position.
    waiting_turn = await v.says("我的订单怎么还没到")
    [ack] = waiting_turn["replies"]
    assert ack["text"].startswith(texts.QUEUE_RECEIVED)  # + position, or when agents are back (tests/engine)

    taken = await agent.post(f"/console/conversations/{conversation.id}/take")
    assert taken.status == 200
    conversation = await conversation_of(client, first_id)
    assert conversation.state == ConversationState.AGENT and conversation.agent_id == agent.id
    [joined] = await rows(client, Message, Message.conversation_id == conversation.id, Message.sender == Sender.SYSTEM)
    assert joined.text == AGENT_JOINED and await outbox_for(client, joined.id)

    reply = await agent.post(f"/console/conversations/{conversation.id}/messages", {"text": "您好，我来帮您查一下"})
    assert reply.status == 201
    reply_id = (await reply.json())["message"]["id"]
    [row] = await rows(client, Message, Message.id == reply_id)
    assert row.sender == Sender.AGENT and row.agent_id == agent.id and row.customer_id == conversation.customer_id
    [outbox] = await outbox_for(client, reply_id)
    assert outbox.channel == "webchat" and outbox.payload["text"] == "您好，我来帮您查一下"

    # Still silent after the take-over; the visitor sees the agent's words.
    assert (await v.says("好的谢谢"))["replies"] == []
    history = await v.history()
    assert [m["sender"] for m in history if m["direction"] == "out"][-2:] == ["system", "agent"]
    assert history[-2]["text"] == "您好，我来帮您查一下" or history[-1]["text"] == "好的谢谢"
    bot_rows = await rows(client, Message, Message.conversation_id == conversation.id, Message.sender == Sender.BOT)
    bot_after_queue = [m for m in bot_rows if m.reply_to_id not in (first_id, waiting_turn["id"])]
    assert bot_after_queue == []  # only 转人工 and the message while queued were answered


async def test_two_agents_cannot_take_the_same_conversation(client: Any, staff: Any, visitor: Any) -> None:
    _v, message_id = await queued_conversation(visitor)
    conversation = await conversation_of(client, message_id)
    alice, bob = await staff("agent"), await staff("agent")
    results = await asyncio.gather(
        alice.post(f"/console/conversations/{conversation.id}/take"),
        bob.post(f"/console/conversations/{conversation.id}/take"),
    )
    statuses = sorted(r.status for r in results)
    assert statuses == [200, 409]
    loser = next(r for r in results if r.status == 409)
    assert (await loser.json())["code"] == "conflict"
    winner = alice if results[0].status == 200 else bob
    conversation = await conversation_of(client, message_id)
    assert conversation.agent_id == winner.id
    joined = await rows(client, Message, Message.conversation_id == conversation.id, Message.sender == Sender.SYSTEM)
    assert len(joined) == 1
    assert len(await rows(client, AuditLog, AuditLog.action == "conversation.take_over")) == 1


async def test_per_agent_cap_refuses_one_more(client: Any, staff: Any, visitor: Any) -> None:
    agent = await staff("agent", max_concurrent=1)
    _a, first = await queued_conversation(visitor)
    _b, second = await queued_conversation(visitor)
    c1, c2 = await conversation_of(client, first), await conversation_of(client, second)
    assert (await agent.post(f"/console/conversations/{c1.id}/take")).status == 200
    refused = await agent.post(f"/console/conversations/{c2.id}/take")
    assert refused.status == 409 and "上限" in (await refused.json())["message"]
    assert (await conversation_of(client, second)).state == ConversationState.QUEUED


async def test_internal_note_is_never_shown_or_sent_to_the_customer(client: Any, staff: Any, visitor: Any) -> None:
    v, message_id = await queued_conversation(visitor)
    conversation = await conversation_of(client, message_id)
    agent = await staff("agent")
    await agent.post(f"/console/conversations/{conversation.id}/take")
    resp = await agent.post(f"/console/conversations/{conversation.id}/notes", {"text": "客户情绪激动，注意安抚"})
    assert resp.status == 201
    note_id = (await resp.json())["message"]["id"]
    [note] = await rows(client, Message, Message.id == note_id)
    assert note.sender == Sender.NOTE and note.agent_id == agent.id
    assert await outbox_for(client, note_id) == []
    assert all(m["text"] != "客户情绪激动，注意安抚" for m in await v.history())
    detail = await (await agent.get(f"/console/conversations/{conversation.id}")).json()
    assert any(m["sender"] == "note" for m in detail["messages"])


async def test_only_the_owner_replies_and_transfer_goes_to_an_online_agent(
    client: Any, staff: Any, visitor: Any
) -> None:
    _v, message_id = await queued_conversation(visitor)
    conversation = await conversation_of(client, message_id)
    alice, bob = await staff("agent"), await staff("agent")
    await alice.post(f"/console/conversations/{conversation.id}/take")
    stranger = await bob.post(f"/console/conversations/{conversation.id}/messages", {"text": "插一句"})
    assert stranger.status == 403

    offline = await alice.post(f"/console/conversations/{conversation.id}/transfer", {"agent_id": bob.id})
    assert offline.status == 409
    assert (await bob.put("/console/presence", {"presence": "online"})).status == 200
    moved = await alice.post(f"/console/conversations/{conversation.id}/transfer", {"agent_id": bob.id})
    assert moved.status == 200
    assert (await conversation_of(client, message_id)).agent_id == bob.id
    assert (await bob.post(f"/console/conversations/{conversation.id}/messages", {"text": "我接着帮您"})).status == 201
    assert (await alice.post(f"/console/conversations/{conversation.id}/messages", {"text": "x"})).status == 403
    [audit] = await rows(client, AuditLog, AuditLog.action == "conversation.transfer")
    assert audit.actor_id == alice.id and audit.after == {"agent_id": bob.id}


async def test_hand_back_lets_the_bot_answer_again_and_close_starts_a_new_conversation(
    client: Any, staff: Any, visitor: Any
) -> None:
    v, message_id = await queued_conversation(visitor)
    conversation = await conversation_of(client, message_id)
    agent = await staff("agent")
    await agent.post(f"/console/conversations/{conversation.id}/take")
    assert (await agent.post(f"/console/conversations/{conversation.id}/hand-back")).status == 200
    assert (await conversation_of(client, message_id)).state == ConversationState.BOT
    answered = await v.says("运费怎么算")
    assert answered["replies"], "the bot answers again after hand-back"

    assert (await agent.post(f"/console/conversations/{conversation.id}/close")).status == 200
    assert (await conversation_of(client, message_id)).state == ConversationState.CLOSED
    later = await v.says("你好")
    assert (await conversation_of(client, later["id"])).id != conversation.id


async def test_agents_see_personal_data_masked_supervisors_in_full(client: Any, staff: Any, visitor: Any) -> None:
    v, message_id = await queued_conversation(visitor)
    await v.says("我的手机号是13912345678，请回电")
    conversation = await conversation_of(client, message_id)
    async with transaction(client.app[db_key]) as session:
        customer = await session.get_one(Customer, conversation.customer_id)
        customer.name, customer.phone = "张三丰", "13812345678"
    agent, supervisor = await staff("agent"), await staff("supervisor")
    seen_by_agent = await (await agent.get(f"/console/conversations/{conversation.id}")).json()
    assert seen_by_agent["customer"]["name"] == "张**" and seen_by_agent["customer"]["phone"] == "138****5678"
    assert "13812345678" not in orjson.dumps(seen_by_agent).decode()
    assert "我的手机号是139****5678，请回电" in [m["text"] for m in seen_by_agent["messages"]]
    queue = await (await agent.get("/console/queue")).json()
    assert queue["waiting"][0]["customer_name"] == "张**"
    seen_by_supervisor = await (await supervisor.get(f"/console/conversations/{conversation.id}")).json()
    assert seen_by_supervisor["customer"]["phone"] == "13812345678"
    assert "我的手机号是13912345678，请回电" in [m["text"] for m in seen_by_supervisor["messages"]]


async def test_suggestions_and_confirming_a_faq_match(client: Any, staff: Any, visitor: Any) -> None:
    v = await visitor()
    await v.says("转人工")
    asked = await v.says("怎么申请退货")
    conversation = await conversation_of(client, asked["id"])
    agent = await staff("agent")
    body = await (await agent.get(f"/console/conversations/{conversation.id}/suggestions")).json()
    assert body["message_id"] == asked["id"] and body["suggestions"]
    best = body["suggestions"][0]
    assert "退" in best["question"] + best["answer"] and 0 < best["score"] <= 1
    resp = await agent.post(
        f"/console/conversations/{conversation.id}/confirm-faq", {"message_id": asked["id"], "faq_id": best["faq_id"]}
    )
    assert resp.status == 201
    [pair] = await rows(client, FaqConfirmation)
    assert pair.text == "怎么申请退货" and pair.faq_id == best["faq_id"] and pair.agent_id == agent.id
    _docs, pairs = await load_faq_docs(client.app[db_key])  # what every worker retrains with
    assert ("怎么申请退货", best["faq_id"]) in pairs


async def test_canned_responses_are_managed_by_supervisors_and_used_by_agents(client: Any, staff: Any) -> None:
    agent, supervisor = await staff("agent"), await staff("supervisor")
    body = {"shortcut": "hi", "title": "问候", "text": "您好，请问有什么可以帮您？"}
    assert (await agent.post("/console/canned", body)).status == 403
    created = await supervisor.post("/console/canned", body)
    assert created.status == 201
    assert (await supervisor.post("/console/canned", body)).status == 409
    listed = await (await agent.get("/console/canned")).json()
    assert [c["shortcut"] for c in listed] == ["hi"]
    canned_id = (await created.json())["id"]
    assert (await supervisor.put(f"/console/canned/{canned_id}", {"text": "您好！"})).status == 200
    assert (await supervisor.delete(f"/console/canned/{canned_id}")).status == 204
    assert await rows(client, CannedResponse) == []
    actions = [a.action for a in await rows(client, AuditLog, AuditLog.object_type == "canned")]
    assert actions == ["canned.create", "canned.update", "canned.delete"]


async def next_event(ws: Any, topic: str, **match: Any) -> dict[str, Any]:
    while True:
        frame = orjson.loads((await asyncio.wait_for(ws.receive(), 10)).data)
        wanted = frame.get("type") == "event" and frame["topic"] == topic
        if wanted and all(frame["data"].get(k) == v for k, v in match.items()):
            return dict(frame["data"])


async def test_console_websocket_pushes_customer_messages_and_accepts_replies(
    client: Any, staff: Any, visitor: Any
) -> None:
    agent = await staff("agent")
    ws = await agent.http.ws_connect("/api/v1/console/ws")
    assert orjson.loads((await ws.receive()).data)["type"] == "hello"
    v, message_id = await queued_conversation(visitor)
    event = await next_event(ws, "message", id=message_id)
    assert event["text"] == "转人工" and event["sender"] == "customer"
    conversation = await conversation_of(client, message_id)
    await agent.post(f"/console/conversations/{conversation.id}/take")
    await next_event(ws, "conversation.updated", conversation_id=conversation.id)

    frame_out = {"type": "reply", "conversation_id": conversation.id, "text": "实时回复", "ref": "r1"}
    await ws.send_str(orjson.dumps(frame_out).decode())
    while True:
        frame = orjson.loads((await asyncio.wait_for(ws.receive(), 10)).data)
        if frame["type"] == "ack":
            break
    assert frame["ref"] == "r1" and frame["message"]["sender"] == "agent"
    assert any(m["text"] == "实时回复" for m in await v.history())
    await ws.close()


async def test_console_websocket_refuses_anonymous_and_foreign_origins(client: Any, staff: Any) -> None:
    anonymous = await client.get("/api/v1/console/ws", headers={"Upgrade": "websocket", "Connection": "Upgrade"})
    assert anonymous.status == 401
    agent = await staff("agent")
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await agent.http.ws_connect("/api/v1/console/ws", headers={"Origin": "https://evil.example"})


async def test_events_fan_out_across_workers_through_redis(
    settings: Settings, seeded_faq: int, redis_url: str, aiohttp_client: Any, browsers: Any
) -> None:
    """A message arriving at worker A reaches an agent connected to worker B."""
    shared = settings.model_copy(update={"redis_url": redis_url})
    worker_a = await aiohttp_client(create_app(shared))
    worker_b = await aiohttp_client(create_app(shared))
    agent = await make_user(worker_b, "agent")
    # Both workers' bus listeners must be subscribed before A publishes (they start in the background).
    redis = worker_b.app[redis_key]
    channel = f"{shared.redis_namespace}:events"
    for _ in range(200):
        if dict(await redis.pubsub_numsub(channel)).get(channel.encode(), 0) >= 2:
            break
        await asyncio.sleep(0.05)
    agent_http = browsers(worker_b)
    await sign_in(agent_http, agent.username)
    ws = await agent_http.ws_connect("/api/v1/console/ws")
    await ws.receive()  # hello
    posted = await worker_a.post("/api/v1/webchat/messages", json={"text": "转人工", "client_msg_id": "x1"})
    message_id = (await posted.json())["id"]
    event = await next_event(ws, "message", id=message_id)
    assert event["text"] == "转人工"
    await ws.close()
    async with worker_a.app[db_key]() as session:
        assert (await session.get_one(Message, message_id)).text == "转人工"


async def test_logout_everywhere_closes_the_live_console(client: Any, staff: Any, browsers: Any) -> None:
    agent = await staff("agent")
    ws = await agent.http.ws_connect("/api/v1/console/ws")
    assert orjson.loads((await ws.receive()).data)["type"] == "hello"
    phone = browsers(client)
    headers = await sign_in(phone, agent.user.username)
    resp = await phone.post("/api/v1/auth/logout", json={"everywhere": True}, headers=headers)
    assert resp.status == 204
    closing = await asyncio.wait_for(ws.receive(), 10)
    assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 4401


async def test_vip_escalations_wait_at_the_front_of_the_queue(client: Any, staff: Any, visitor: Any) -> None:
    _a, first = await queued_conversation(visitor)
    _b, second = await queued_conversation(visitor)
    vip = await conversation_of(client, second)
    async with transaction(client.app[db_key]) as session:
        row = await session.get_one(Conversation, vip.id)
        row.queue_reason = "vip"
    agent = await staff("agent")
    waiting = (await (await agent.get("/console/queue")).json())["waiting"]
    assert [w["conversation_id"] for w in waiting] == [vip.id, (await conversation_of(client, first)).id]
    assert waiting[0]["reason_label"] == "VIP 客户"
