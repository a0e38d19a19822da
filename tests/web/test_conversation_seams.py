"""The seams between flows, through the HTTP API and the WebSockets: presence from the console connection,
the escalation chain and its console badge, queue acknowledgements outside service hours and 留言,
photos, 客服正在输入, and the widget's welcome configuration."""

from __future__ import annotations

import asyncio
import struct
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.engine import texts
from bot.keys import bus_key, db_key, engine_key
from bot.web.console import expire_presence
from models import AuditLog, ConversationState, Customer, Message, Presence, User
from models.ticket import Ticket
from scrm import presence
from scrm.db import transaction
from tests.web.conftest import conversation_of, rows

SATURDAY_NOON = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)  # Saturday 12:00 in Shanghai: no service


def png(width: int = 2, height: int = 2) -> bytes:
    """A real, tiny PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


# --- presence --------------------------------------------------------------------------------------


async def test_presence_follows_the_console_connection(client: Any, staff: Any, visitor: Any) -> None:
    agent, colleague = await staff("agent"), await staff("agent")
    for person in (agent, colleague):
        assert (await person.put("/console/presence", {"presence": "online"})).status == 200
    ws = await colleague.http.ws_connect("/api/v1/console/ws")
    hello = await ws.receive_json()
    grace = client.app[engine_key].services.settings.presence_grace
    assert hello["type"] == "hello" and hello["heartbeat_seconds"] == grace.total_seconds() / 3
    await ws.send_json({"type": "ping"})
    assert (await ws.receive_json())["type"] == "pong"
    [row] = await rows(client, User, User.id == colleague.id)
    beat = row.last_seen_at
    assert beat is not None
    await ws.close()

    # The browser is gone: still present within the grace period, offline after it.
    async with transaction(client.app[db_key]) as session:
        assert await presence.is_present(session, colleague.id, now=beat + grace / 2, grace=grace)
        assert await presence.expire(session, now=beat + grace / 2, grace=grace) == []
        gone = await presence.expire(session, now=beat + grace + timedelta(seconds=1), grace=grace)
        assert colleague.id in gone and agent.id in gone  # the agent never opened a console after saying 在线
    [row] = await rows(client, User, User.id == colleague.id)
    assert row.presence == Presence.OFFLINE

    # A transfer only goes to someone present.
    v = await visitor()
    conversation = await conversation_of(client, (await v.says("转人工"))["id"])
    assert (await agent.put("/console/presence", {"presence": "online"})).status == 200
    assert (await agent.post(f"/console/conversations/{conversation.id}/take")).status == 200
    refused = await agent.post(f"/console/conversations/{conversation.id}/transfer", {"agent_id": colleague.id})
    assert refused.status == 409 and "不在线" in (await refused.json())["message"]
    assert (await colleague.put("/console/presence", {"presence": "online"})).status == 200
    moved = await agent.post(f"/console/conversations/{conversation.id}/transfer", {"agent_id": colleague.id})
    assert moved.status == 200


async def test_the_scheduled_expiry_sets_a_silent_console_offline(client: Any, staff: Any) -> None:
    agent = await staff("agent")
    await agent.put("/console/presence", {"presence": "online"})
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    async with transaction(client.app[db_key]) as session:
        await presence.touch(session, agent.id, now=long_ago)
    events: list[tuple[str, dict[str, Any]]] = []
    async with client.app[bus_key].subscribe() as queue:
        await expire_presence(client.app)
        events.append(await asyncio.wait_for(queue.get(), 5))
    assert events == [("presence", {"user_id": agent.id, "presence": Presence.OFFLINE})]
    [row] = await rows(client, User, User.id == agent.id)
    assert row.presence == Presence.OFFLINE


# --- queue outside service hours, 留言 -------------------------------------------------------------


async def test_outside_service_hours_the_queue_says_when_agents_are_back_and_takes_a_message(
    client: Any, visitor: Any
) -> None:
    client.app[engine_key].services.clock = lambda: SATURDAY_NOON
    v = await visitor()
    [queued] = (await v.says("转人工"))["replies"]
    back = "11月30日 09:00"  # Monday morning
    assert queued["text"] == texts.HANDOFF_QUEUED + texts.QUEUE_CLOSED.format(back=back)
    [ack] = (await v.says("我的快递三天没动了"))["replies"]
    assert ack["text"] == texts.QUEUE_RECEIVED + texts.QUEUE_CLOSED.format(back=back)
    left = await v.says("留言 快递三天没动了，请周一联系我")
    [ticket] = await rows(client, Ticket)
    assert ticket.description == "快递三天没动了，请周一联系我" and ticket.channel == "webchat"
    [told] = left["replies"]
    assert told["text"] == texts.LEFT_MESSAGE.format(number=ticket.number, due="11月30日 11:00")  # 2 working hours
    conversation = await conversation_of(client, left["id"])
    assert conversation.state == ConversationState.BOT and ticket.conversation_id == conversation.id
    # every customer turn got exactly one reply
    inbound = await rows(client, Message, Message.direction == "in")
    replied = {m.reply_to_id for m in await rows(client, Message, Message.direction == "out")}
    assert {m.id for m in inbound} <= replied


# --- escalation badge ------------------------------------------------------------------------------


async def test_an_escalation_with_nobody_online_lands_in_the_shared_queue_every_supervisor_sees(
    client: Any, staff: Any
) -> None:
    from bot.engine.handlers.complaint import CUSTOMER
    from scrm import tickets

    boss, admin = await staff("supervisor"), await staff("admin")  # both offline: nobody to take it
    async with transaction(client.app[db_key]) as session:
        person = Customer(name="王女士")
        session.add(person)
        await session.flush()
        policy = tickets.TicketPolicy.load()
        ticket = await tickets.open_ticket(session, policy=policy, customer_id=person.id or 0, description="屏幕黑屏",
                                           actor=CUSTOMER, channel="webchat", notify=False)  # fmt: skip
        await tickets.escalate(session, policy=policy, ticket=ticket, reason="客户不满意")
        assert ticket.escalated_to_id is None and ticket.escalation_level == 1
    for person in (boss, admin):
        body = await (await person.get("/console/escalations")).json()
        assert body["shared"] == 1 and body["mine"] == 0 and body["tickets"][0]["number"] == ticket.number
    agent = await staff("agent")
    assert (await agent.get("/console/escalations")).status == 403

    # The next escalation, with the supervisor online, lands on them.
    await boss.put("/console/presence", {"presence": "online"})
    async with transaction(client.app[db_key]) as session:
        row = await session.get_one(Ticket, ticket.id)
        await tickets.escalate(session, policy=policy, ticket=row, reason="仍未解决")
    body = await (await boss.get("/console/escalations")).json()
    assert body["shared"] == 0 and body["mine"] == 1


# --- photos ----------------------------------------------------------------------------------------


async def test_a_photo_is_checked_stored_shown_to_its_sender_and_the_console_only(
    client: Any, staff: Any, visitor: Any
) -> None:
    v, stranger = await visitor(), await visitor()
    await v.says("我要投诉")
    await v.says("DD2026112300001")
    image = png()
    posted = await v.http.post("/api/v1/webchat/images?client_msg_id=p1", data=image,
                               headers={"Content-Type": "image/png"})  # fmt: skip
    assert posted.status == 201, await posted.text()
    body = await posted.json()
    assert "已收到照片" in body["replies"][0]["text"]  # the complaint flow keeps it and asks on
    [row] = await rows(client, Message, Message.id == body["id"])
    assert row.kind == "image" and row.payload["image"]["type"] == "image/png"
    name = row.payload["image"]["name"]
    assert row.payload["image"]["size"] == len(image) and name.endswith(".png")
    mine = await v.http.get(f"/api/v1/webchat/images/{name}")
    assert mine.status == 200 and await mine.read() == image
    assert mine.headers["Content-Type"] == "image/png" and mine.headers["X-Content-Type-Options"] == "nosniff"
    assert (await stranger.http.get(f"/api/v1/webchat/images/{name}")).status == 404
    assert [m.get("image") for m in await v.history() if m["direction"] == "in"][-1] == name
    agent = await staff("agent")
    assert (await agent.get(f"/console/images/{name}")).status == 200
    detail = await (await agent.get(f"/console/conversations/{row.conversation_id}")).json()
    assert [m["image"] for m in detail["messages"] if m["image"]] == [name]
    assert (await client.get(f"/api/v1/console/images/{name}")).status == 401
    assert (await agent.get("/console/images/..%2F..%2Fhuike.db")).status == 404

    # Wrong type (declared or real), too large, empty: a clear 4xx, nothing stored.
    for data, kind, status in (
        (b"GIF89a not really", "image/png", 415),
        (b"<svg onload=alert(1)>", "image/svg+xml", 415),
        (b"%PDF-1.4", "application/pdf", 415),
        (image + b"\0" * (5 * 1024 * 1024), "image/png", 413),
        (b"", "image/png", 415),
    ):
        resp = await v.http.post("/api/v1/webchat/images?client_msg_id=bad", data=data, headers={"Content-Type": kind})
        assert resp.status == status, (kind, await resp.text())
    assert len(await rows(client, Message, Message.kind == "image")) == 1


# --- typing ----------------------------------------------------------------------------------------


async def test_the_customer_sees_the_agent_typing(client: Any, staff: Any, visitor: Any) -> None:
    v = await visitor()
    conversation = await conversation_of(client, (await v.says("转人工"))["id"])
    agent, other = await staff("agent"), await staff("agent")
    await agent.put("/console/presence", {"presence": "online"})
    assert (await agent.post(f"/console/conversations/{conversation.id}/take")).status == 200
    widget = await v.http.ws_connect("/api/v1/webchat/ws?after=999999")
    for person in (other, agent):  # only the agent serving the customer makes it show
        console = await person.http.ws_connect("/api/v1/console/ws")
        await console.receive_json()  # hello
        await console.send_json({"type": "typing", "conversation_id": conversation.id})
        await console.close()
    frame = await asyncio.wait_for(widget.receive_json(), 5)
    assert frame == {"type": "typing"}
    await widget.close()


# --- widget configuration --------------------------------------------------------------------------


async def test_the_welcome_and_quick_replies_are_set_by_an_admin(client: Any, staff: Any) -> None:
    default = await (await client.get("/api/v1/webchat/config")).json()
    assert default["welcome"] and [q["title"] for q in default["quick_replies"]][-1] == "转人工"
    admin, supervisor = await staff("admin"), await staff("supervisor")
    wanted = {"welcome": "欢迎光临小米之家！", "quick_replies": [{"title": "保修", "text": "保修多久？"}]}
    assert (await supervisor.put("/webchat/config", wanted)).status == 403
    too_long = {**wanted, "quick_replies": [{"title": "x" * 13, "text": "y"}]}
    assert (await admin.put("/webchat/config", too_long)).status == 422
    assert (await admin.put("/webchat/config", wanted)).status == 200
    assert await (await client.get("/api/v1/webchat/config")).json() == wanted
    [audit] = await rows(client, AuditLog, AuditLog.action == "widget.update")
    assert audit.after == wanted
