"""Issue 15's findings at the edge: hostile inputs get a 4xx, abuse gets a 429, headers, replays, seeding."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlmodel import select

from bot.app import JOB_DEFAULTS, create_app
from bot.keys import db_key, scheduler_key
from bot.web.ratelimit import counters
from models import CareRule, Message, TagRule
from scrm.db import SessionFactory
from tests.conftest import make_settings
from tests.security.hostile import Probe, probes, send, text_xml, wechat_query
from tests.security.test_sweep import Staff

TOKEN = "edge-token"
AES_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
CHANNELS = {"wechat_token": TOKEN, "wechat_app_id": "wx-edge", "wecom_token": TOKEN, "wecom_aes_key": AES_KEY,
            "wecom_corp_id": "ww-edge"}  # fmt: skip


@pytest.fixture
async def edge(database_url: str, tmp_path: Path, db: SessionFactory, seeded_faq: int, aiohttp_client: Any) -> Any:
    settings = make_settings(database_url, tmp_path, **CHANNELS)
    return await aiohttp_client(create_app(settings))


def base(client: Any) -> str:
    return str(client.make_url("")).rstrip("/")


@pytest.mark.parametrize("probe", probes(TOKEN), ids=lambda p: p.id)
async def test_hostile_input_gets_a_clear_4xx(edge: Any, probe: Probe) -> None:
    staff = Staff()
    if probe.role != "anonymous":
        await staff.login(edge, probe.role)
    answer = await send(edge.session, base(edge), probe, staff.headers.get(probe.role, {}))
    assert answer.status in probe.expect, (answer.status, answer.body[:300])
    assert "Traceback" not in answer.body


# --- web-chat rate limits --------------------------------------------------------------------------------


async def _post(http: Any, url: str, n: int) -> Any:
    return await http.post(url, json={"text": f"第{n}条", "client_msg_id": f"m-{n}"})


async def test_one_visitor_is_limited_with_429_retry_after_and_a_chinese_message_others_are_not(
    database_url: str, tmp_path: Path, db: SessionFactory, seeded_faq: int, aiohttp_client: Any
) -> None:
    settings = make_settings(database_url, tmp_path, webchat_messages_per_visitor=3)
    client = await aiohttp_client(create_app(settings))
    statuses = [(await _post(client, "/api/v1/webchat/messages", n)).status for n in range(3)]
    assert statuses == [201, 201, 201]
    refused = await _post(client, "/api/v1/webchat/messages", 3)
    assert refused.status == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    body = await refused.json()
    assert body["code"] == "rate_limited" and "太快" in body["message"]
    async with aiohttp.ClientSession() as other:  # another visitor on the same address is served at once
        url = client.make_url("/api/v1/webchat/messages")
        resp = await other.post(url, json={"text": "你好", "client_msg_id": "o"})
        assert resp.status == 201
    async with client.app[db_key]() as session:
        stored = (await session.exec(select(Message).where(Message.text == "第3条"))).all()
    assert stored == []  # refused before anything is stored or answered


async def test_one_address_is_limited_across_new_visitors(
    database_url: str, tmp_path: Path, db: SessionFactory, seeded_faq: int, aiohttp_client: Any
) -> None:
    settings = make_settings(database_url, tmp_path, webchat_messages_per_address=4)
    client = await aiohttp_client(create_app(settings))
    statuses = []
    for n in range(6):  # a script dropping its cookie each time is a new visitor, but the same address
        client.session.cookie_jar.clear()
        statuses.append((await _post(client, "/api/v1/webchat/messages", n)).status)
    assert statuses == [201, 201, 201, 201, 429, 429]


async def test_websocket_messages_are_limited_too(
    database_url: str, tmp_path: Path, db: SessionFactory, seeded_faq: int, aiohttp_client: Any
) -> None:
    settings = make_settings(database_url, tmp_path, webchat_messages_per_visitor=2)
    client = await aiohttp_client(create_app(settings))
    await _post(client, "/api/v1/webchat/messages", 0)  # sets the visitor cookie
    async with client.ws_connect("/api/v1/webchat/ws?after=999999") as ws:
        for n in (1, 2):
            await ws.send_json({"text": f"ws {n}", "client_msg_id": f"ws-{n}"})
        frames = []
        while len([f for f in frames if f["type"] in ("ack", "error")]) < 2:
            frames.append(await asyncio.wait_for(ws.receive_json(), 30))
    replies = [f for f in frames if f["type"] in ("ack", "error")]
    assert replies[0]["type"] == "ack"
    assert replies[1]["type"] == "error" and replies[1]["code"] == "rate_limited"
    assert replies[1]["retry_after"] >= 1 and replies[1]["client_msg_id"] == "ws-2"


async def test_the_limit_is_shared_by_workers_through_redis(
    database_url: str, tmp_path: Path, db: SessionFactory, seeded_faq: int, aiohttp_client: Any, redis_url: str
) -> None:
    settings = make_settings(database_url, tmp_path, redis_url=redis_url, webchat_messages_per_address=2)
    first, second = await aiohttp_client(create_app(settings)), await aiohttp_client(create_app(settings))
    assert (await _post(first, "/api/v1/webchat/messages", 0)).status == 201
    assert (await _post(second, "/api/v1/webchat/messages", 1)).status == 201
    assert (await _post(first, "/api/v1/webchat/messages", 2)).status == 429


# --- headers, /metrics, OpenAPI ------------------------------------------------------------------------------


async def test_security_headers_on_pages_api_static_and_errors(edge: Any) -> None:
    for path in ("/", "/login", "/api/v1/webchat/messages", "/api/v1/nope", "/healthz", "/static/webchat/chat.js"):
        resp = await edge.get(path)
        assert resp.headers["Server"] == "Huike", path
        assert resp.headers["X-Content-Type-Options"] == "nosniff", path
        if path.startswith("/api/"):
            assert resp.headers["Cache-Control"] == "no-store", path
    page = await edge.get("/")
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors *" in csp  # embeddable by embed.js, no inline script


async def test_metrics_token_and_openapi_for_staff_only(
    database_url: str, tmp_path: Path, db: SessionFactory, seeded_faq: int, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(create_app(make_settings(database_url, tmp_path, metrics_token="m-token")))
    assert (await client.get("/metrics")).status == 401
    assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status == 401
    ok = await client.get("/metrics", headers={"Authorization": "Bearer m-token"})
    assert ok.status == 200 and "huike_http_requests_total" in await ok.text()
    assert (await client.get("/api/v1/openapi.json")).status == 401
    staff = Staff()
    await staff.login(client, "agent")
    doc = await client.get("/api/v1/openapi.json", headers=staff.headers["agent"])
    assert doc.status == 200 and "paths" in await doc.json()


async def test_console_agent_list_shows_no_login_names_or_roles(edge: Any) -> None:
    staff = Staff()
    await staff.login(edge, "agent")
    await staff.login(edge, "admin")
    agents = await (await edge.get("/api/v1/console/agents", headers=staff.headers["agent"])).json()
    fields = {"id", "display_name", "presence", "active_count", "max_concurrent", "role"}
    assert agents and all(set(a) <= fields and a.get("role") is None for a in agents)  # roles only for leads
    assert not any(a["display_name"].startswith(("agent-", "admin-")) for a in agents)


async def test_console_websocket_refuses_an_out_of_range_conversation_id(edge: Any) -> None:
    staff = Staff()
    await staff.login(edge, "agent")
    async with edge.ws_connect("/api/v1/console/ws", headers={"Cookie": staff.headers["agent"]["Cookie"]}) as ws:
        assert (await ws.receive_json())["type"] == "hello"
        await ws.send_json({"type": "reply", "conversation_id": 2**40, "text": "hi", "ref": "r1"})
        frame = await asyncio.wait_for(ws.receive_json(), 30)
        while frame["type"] == "event":
            frame = await asyncio.wait_for(ws.receive_json(), 30)
        assert frame["type"] == "error" and frame["code"] == "bad_request"
        await ws.send_json({"type": "ping"})  # the socket survived
        assert (await asyncio.wait_for(ws.receive_json(), 30))["type"] == "pong"


# --- WeChat plaintext replays ----------------------------------------------------------------------------------


async def test_a_reused_signature_with_another_body_is_refused_a_retry_of_the_same_body_is_not(edge: Any) -> None:
    query = wechat_query(TOKEN, nonce="fixed-nonce")
    body = text_xml("o-replay", "怎么退货").encode()
    url = "/channels/wechat/default?" + query
    first = await edge.post(url, data=body)
    retry = await edge.post(url, data=body)  # WeChat resending the same message (same query, same body)
    assert first.status == retry.status == 200
    forged = await edge.post(url, data=text_xml("o-replay", "我要投诉").encode())
    assert forged.status == 403
    async with edge.app[db_key]() as session:
        texts = (await session.exec(select(Message.text).where(Message.channel_msg_id.startswith("default:")))).all()  # type: ignore[union-attr]
    assert texts.count("怎么退货") == 1 and "我要投诉" not in texts


# --- start-up seeding, scheduler defaults, log lines ------------------------------------------------------------


async def test_default_rules_exist_as_soon_as_the_app_serves_and_no_job_seeds_on_a_timer(edge: Any) -> None:
    async with edge.app[db_key]() as session:
        assert (await session.exec(select(TagRule))).first() is not None
        assert (await session.exec(select(CareRule))).first() is not None
    jobs = edge.app[scheduler_key].get_jobs()
    assert "scrm-seed" not in {j.id for j in jobs}
    for job in jobs:  # a run delayed by a busy start still happens once
        assert job.misfire_grace_time == JOB_DEFAULTS["misfire_grace_time"] and job.coalesce, job.id


async def test_an_over_long_request_line_is_one_log_line_not_a_traceback(
    edge: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aiohttp.server")
    host, port = base(edge).removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    reply = await reader.read()
    writer.close()
    assert reply.split(b" ")[1] == b"400"
    records = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert len(records) == 1
    assert records[0].exc_info is None and records[0].getMessage().startswith("bad_http_request from 127.0.0.1")
    assert "aaaa" not in records[0].getMessage()  # not the client's bytes


def test_probe_catalogue_is_json_serialisable() -> None:
    for probe in probes(TOKEN):  # the live probe sends the same requests through a real socket
        json.dumps(probe.json)


async def test_counters_forget_only_their_prefix(edge: Any) -> None:
    store = counters(edge.app)
    await store.hit("a:1", 60)
    await store.hit("b:1", 60)
    await store.forget("a:")
    assert (await store.peek("a:1"))[0] == 0 and (await store.peek("b:1"))[0] == 1
