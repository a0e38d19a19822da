"""Web-chat: a visitor asks, the bot answers from the FAQ; everything lands in the database once."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from sqlmodel import col, func, select

from bot.keys import db_key
from models import Conversation, Direction, Message, OutboxMessage, OutboxStatus


async def count(client: Any, model: Any, *where: Any) -> int:
    async with client.app[db_key]() as session:
        return (await session.exec(select(func.count()).select_from(model).where(*where))).one()


async def test_visitor_question_gets_faq_answer_and_both_messages_are_stored(client: Any) -> None:
    resp = await client.post("/api/v1/webchat/messages", json={"text": "我的快递到哪儿了", "client_msg_id": "m1"})
    assert resp.status == 201
    body = await resp.json()
    assert "huike_visitor" in resp.cookies
    assert body["replies"] and "物流" in body["replies"][0]["text"]

    history = await (await client.get("/api/v1/webchat/messages?after=0")).json()
    directions = [m["direction"] for m in history["messages"]]
    assert directions == ["in", "out"]
    assert history["messages"][0]["id"] == body["id"]

    async with client.app[db_key]() as session:
        rows = (await session.exec(select(Message).order_by(col(Message.id)))).all()
        conversation = await session.get(Conversation, rows[0].conversation_id)
    assert [r.direction for r in rows] == [Direction.IN, Direction.OUT]
    assert rows[0].customer_id == rows[1].customer_id == conversation.customer_id
    assert rows[1].reply_to_id == rows[0].id


async def test_same_client_msg_id_twice_is_stored_and_answered_once(client: Any) -> None:
    first = await client.post("/api/v1/webchat/messages", json={"text": "运费怎么算", "client_msg_id": "dup-1"})
    again = await client.post("/api/v1/webchat/messages", json={"text": "运费怎么算", "client_msg_id": "dup-1"})
    assert first.status == 201 and again.status == 200
    a, b = await first.json(), await again.json()
    assert a["id"] == b["id"] and b["duplicate"] is True
    assert [r["id"] for r in a["replies"]] == [r["id"] for r in b["replies"]]
    assert await count(client, Message, Message.direction == Direction.IN) == 1
    assert await count(client, Message, Message.direction == Direction.OUT) == 1


async def test_concurrent_duplicates_produce_one_message_and_one_reply(client: Any) -> None:
    first = await client.post("/api/v1/webchat/messages", json={"text": "你好", "client_msg_id": "warm"})
    assert first.status == 201
    payload = {"text": "怎么开发票", "client_msg_id": "race-1"}
    results = await asyncio.gather(*(client.post("/api/v1/webchat/messages", json=payload) for _ in range(5)))
    ids = {(await r.json())["id"] for r in results}
    assert len(ids) == 1
    assert sorted(r.status for r in results) == [200, 200, 200, 200, 201]
    assert await count(client, Message, Message.direction == Direction.IN) == 2
    assert await count(client, Message, Message.direction == Direction.OUT) == 2


async def test_unknown_question_gets_polite_fallback_offering_human(client: Any) -> None:
    resp = await client.post("/api/v1/webchat/messages", json={"text": "量子纠缠怎么解释", "client_msg_id": "q1"})
    body = await resp.json()
    assert "转人工" in body["replies"][0]["text"]


async def test_websocket_delivers_live_and_reconnect_gets_missed_replies_once(client: Any) -> None:
    # Start a conversation over HTTP, so the visitor has a cookie and history.
    first = await client.post("/api/v1/webchat/messages", json={"text": "多久发货", "client_msg_id": "h1"})
    first_body = await first.json()
    last_seen = first_body["replies"][-1]["id"]

    # While "away", another message is answered (HTTP fallback).
    missed = await (
        await client.post("/api/v1/webchat/messages", json={"text": "怎么退货", "client_msg_id": "h2"})
    ).json()

    ws = await client.ws_connect(f"/api/v1/webchat/ws?after={last_seen}")
    received = [orjson.loads((await ws.receive()).data) for _ in range(2)]
    assert [m["message"]["id"] for m in received] == [missed["id"], missed["replies"][0]["id"]]

    await ws.send_str(orjson.dumps({"text": "积分怎么用", "client_msg_id": "w1"}).decode())
    frames = []
    while len([f for f in frames if f["type"] == "message"]) < 2 or not any(f["type"] == "ack" for f in frames):
        frames.append(orjson.loads((await asyncio.wait_for(ws.receive(), 5)).data))
    live_ids = [f["message"]["id"] for f in frames if f["type"] == "message"]
    assert len(live_ids) == len(set(live_ids)) == 2
    await ws.close()

    # Reconnecting after the last id seen returns nothing twice.
    ws2 = await client.ws_connect(f"/api/v1/webchat/ws?after={max(live_ids)}")
    await ws2.send_str(orjson.dumps({"text": "谢谢", "client_msg_id": "w2"}).decode())
    frames2 = []
    while not any(f["type"] == "ack" for f in frames2):
        frames2.append(orjson.loads((await asyncio.wait_for(ws2.receive(), 5)).data))
    assert all(f["message"]["id"] > max(live_ids) for f in frames2 if f["type"] == "message")
    await ws2.close()


async def test_oversize_body_is_413_and_nothing_stored(client: Any) -> None:
    resp = await client.post(
        "/api/v1/webchat/messages",
        data=orjson.dumps({"text": "长" * 40000, "client_msg_id": "big"}),
        headers={"Content-Type": "application/json"},
    )
    assert resp.status == 413
    assert (await resp.json())["code"] == "too_large"
    assert await count(client, Message) == 0


async def test_malformed_json_is_400_with_json_error(client: Any) -> None:
    resp = await client.post(
        "/api/v1/webchat/messages", data=b'{"text": "hi", ', headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    body = await resp.json()
    assert body["code"] and "Traceback" not in await resp.text()
    assert await count(client, Message) == 0


async def test_invalid_fields_are_422(client: Any) -> None:
    resp = await client.post("/api/v1/webchat/messages", json={"text": "", "client_msg_id": "x"})
    assert resp.status == 422
    resp = await client.post("/api/v1/webchat/messages", json=["not", "an", "object"])
    assert resp.status == 422
    assert await count(client, Message) == 0


async def test_unknown_route_is_json_404(client: Any) -> None:
    resp = await client.get("/api/v1/nothing-here")
    assert resp.status == 404
    assert (await resp.json())["code"] == "not_found"


async def test_forged_visitor_cookie_is_refused(client: Any) -> None:
    client.session.cookie_jar.update_cookies({"huike_visitor": "someone-else.0123456789abcdef0123456789abcdef"})
    resp = await client.post("/api/v1/webchat/messages", json={"text": "你好", "client_msg_id": "f1"})
    assert resp.status == 403
    assert (await resp.json())["code"] == "forbidden"
    assert await count(client, Message) == 0
    assert (await client.get("/api/v1/webchat/messages?after=0")).status == 403


async def test_webchat_outbox_rows_are_marked_delivered(client: Any) -> None:
    await client.post("/api/v1/webchat/messages", json={"text": "怎么开发票", "client_msg_id": "o1"})
    for _ in range(50):
        if await count(client, OutboxMessage, OutboxMessage.status == OutboxStatus.SENT) == 1:
            break
        await asyncio.sleep(0.05)
    assert await count(client, OutboxMessage, OutboxMessage.status == OutboxStatus.SENT) == 1


async def test_health_ready_and_metrics(client: Any) -> None:
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["checks"]["database"] == "ok"
    await client.post("/api/v1/webchat/messages", json={"text": "你好", "client_msg_id": "m"})
    text = await (await client.get("/metrics")).text()
    assert 'huike_messages_in_total{channel="webchat"}' in text
    assert "huike_answer_latency_seconds_bucket" in text
