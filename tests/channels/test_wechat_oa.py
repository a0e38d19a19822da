"""Official Account callbacks end to end: a real Huike app on loopback, the fake WeChat API, a real DB."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

from sqlmodel import select

import bot.engine.engine as engine_module
from bot.channels.wechat_common import Cipher, sign
from bot.engine.router import Router
from bot.keys import outbox_key
from models import ChannelIdentity, IdentityStatus, InboundState, OutboxStatus, utcnow
from models.scrm import Consent
from scrm.db import SessionFactory, transaction
from scrm.interactions import current_conversation, record_outbound
from tests.channels.conftest import (
    AES_KEY,
    FAQ_ANSWER_PART,
    FAQ_QUESTION,
    TOKEN,
    AppFactory,
    Sender,
    inbound_rows,
    outbox_rows,
    outbox_settled,
    reply_content,
    wait_for,
)
from tests.fakes.wechat_server import FakeWeChat

CUSTOM = "/cgi-bin/message/custom/send"


async def test_url_verification_echoes_only_when_signed(wx: Any) -> None:
    q = {"timestamp": "1700000000", "nonce": "n1", "echostr": "e-123"}
    ok = await wx.get("/channels/wechat/default", params={**q, "signature": sign(TOKEN, "1700000000", "n1")})
    assert ok.status == 200 and await ok.text() == "e-123"
    bad = await wx.get("/channels/wechat/default", params={**q, "signature": "0" * 40})
    assert bad.status == 403
    assert (await wx.get("/channels/wechat/nope", params=q)).status == 404


async def test_signed_plaintext_text_gets_faq_answer_as_passive_reply(
    wx: Any, fake: FakeWeChat, db: SessionFactory
) -> None:
    sender = Sender(wx, app_id=fake.app_id)
    status, reply = await sender.post(sender.text_xml("o-alice", FAQ_QUESTION, "9001"))
    assert status == 200
    assert FAQ_ANSWER_PART in reply_content(reply)
    parsed_to = reply.split("<ToUserName>")[1].split("</ToUserName>")[0]
    assert parsed_to == "o-alice"
    assert [m.text for m in await inbound_rows(db)] == [FAQ_QUESTION]
    rows = await outbox_rows(db)
    assert [(r.status, r.delivered_via) for r in rows] == [(OutboxStatus.SENT, "passive")]
    await asyncio.sleep(0.6)  # one outbox poll later: nothing went through the API as well
    assert fake.calls(CUSTOM) == []


async def test_encrypted_text_gets_encrypted_passive_reply(wx: Any, fake: FakeWeChat, db: SessionFactory) -> None:
    sender = Sender(wx, app_id=fake.app_id)
    status, reply = await sender.post(sender.text_xml("o-bob", FAQ_QUESTION, "9002"), encrypted=True)
    assert status == 200  # Sender checked the reply's msg_signature and decrypted it
    assert FAQ_ANSWER_PART in reply_content(reply)
    assert len(await inbound_rows(db, "default:9002")) == 1


async def test_slow_engine_acks_success_then_delivers_once_through_the_api(
    make_app: AppFactory, fake: FakeWeChat, db: SessionFactory
) -> None:
    wx = await make_app(wechat_reply_budget=0.0)  # the engine can never answer inside this budget
    sender = Sender(wx, app_id=fake.app_id)
    status, reply = await sender.post(sender.text_xml("o-carol", FAQ_QUESTION, "9003"))
    assert (status, reply) == (200, "success")
    assert len(await inbound_rows(db, "default:9003")) == 1  # stored before the ack
    await wait_for(lambda: outbox_settled(db))
    await asyncio.sleep(0.6)
    calls = fake.calls(CUSTOM)
    assert len(calls) == 1
    assert calls[0].json and calls[0].json["touser"] == "o-carol"
    assert FAQ_ANSWER_PART in calls[0].json["text"]["content"]
    assert [(r.status, r.delivered_via) for r in await outbox_rows(db)] == [(OutboxStatus.SENT, "api")]


async def test_turn_that_took_the_passive_answer_is_waited_for_past_the_budget(
    make_app: AppFactory, fake: FakeWeChat, db: SessionFactory, monkeypatch: Any
) -> None:
    """The turn takes the passive answer, then its writes outlast the budget: the request waits for
    the commit and answers passively, and nothing goes through the API as well."""
    original = engine_module.record_outbound

    async def slow_record(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(3.0)  # the slot is taken by now; the request stops waiting at 2 s
        return await original(*args, **kwargs)

    monkeypatch.setattr(engine_module, "record_outbound", slow_record)
    wx = await make_app(wechat_reply_budget=2.0)  # ample to reach the slot even on a loaded machine
    sender = Sender(wx, app_id=fake.app_id)
    status, reply = await sender.post(sender.text_xml("o-fay", FAQ_QUESTION, "9010"))
    assert status == 200 and FAQ_ANSWER_PART in reply_content(reply)
    assert [(r.status, r.delivered_via) for r in await outbox_rows(db)] == [(OutboxStatus.SENT, "passive")]
    await asyncio.sleep(0.6)
    assert fake.calls(CUSTOM) == []
    assert len(await inbound_rows(db, "default:9010")) == 1


async def test_turn_still_deciding_at_the_budget_acks_success_and_replies_once_through_the_api(
    make_app: AppFactory, fake: FakeWeChat, db: SessionFactory, monkeypatch: Any
) -> None:
    """The budget runs out while the turn's transaction is open: the request stores the message on its
    own (racing the turn for the unique key), says "success", and the turn's reply goes by the API."""
    original = Router.route

    async def slow_route(self: Router, turn: Any) -> Any:
        await asyncio.sleep(0.5)
        return await original(self, turn)

    monkeypatch.setattr(Router, "route", slow_route)
    wx = await make_app(wechat_reply_budget=0.2)
    sender = Sender(wx, app_id=fake.app_id)
    assert await sender.post(sender.text_xml("o-gus", FAQ_QUESTION, "9011")) == (200, "success")
    await wait_for(lambda: outbox_settled(db))
    await asyncio.sleep(0.6)
    calls = fake.calls(CUSTOM)
    assert len(calls) == 1 and FAQ_ANSWER_PART in calls[0].json["text"]["content"]
    assert [(r.status, r.delivered_via) for r in await outbox_rows(db)] == [(OutboxStatus.SENT, "api")]
    assert [m.state for m in await inbound_rows(db, "default:9011")] == [InboundState.HANDLED]


async def test_failed_turn_still_stores_the_message_and_answers_it_through_the_api(
    wx: Any, fake: FakeWeChat, db: SessionFactory, monkeypatch: Any
) -> None:
    """The turn's transaction fails: WeChat hears "success" only after the message is stored on its
    own, and it is answered at once (not at the recovery job's next run), exactly once."""
    original, failures = Router.route, [RuntimeError("handler crashed")]

    async def flaky_route(self: Router, turn: Any) -> Any:
        if failures:
            raise failures.pop()
        return await original(self, turn)

    monkeypatch.setattr(Router, "route", flaky_route)
    sender = Sender(wx, app_id=fake.app_id)
    assert await sender.post(sender.text_xml("o-hal", FAQ_QUESTION, "9012")) == (200, "success")
    await wait_for(lambda: outbox_settled(db), within=10)  # recovery would wait 30 s and more
    await asyncio.sleep(0.6)
    assert len(fake.calls(CUSTOM)) == 1 and FAQ_ANSWER_PART in fake.calls(CUSTOM)[0].json["text"]["content"]
    assert [m.state for m in await inbound_rows(db, "default:9012")] == [InboundState.HANDLED]


async def test_retry_of_an_answered_message_gets_no_second_reply(wx: Any, fake: FakeWeChat, db: SessionFactory) -> None:
    sender = Sender(wx, app_id=fake.app_id)
    xml = sender.text_xml("o-dan", FAQ_QUESTION, "9004")
    first = await sender.post(xml)
    again = await sender.post(xml)
    assert FAQ_ANSWER_PART in reply_content(first[1])
    assert again == (200, "success")
    assert len(await inbound_rows(db, "default:9004")) == 1
    await asyncio.sleep(0.6)
    assert fake.calls(CUSTOM) == [] and len(await outbox_rows(db)) == 1


async def test_retry_storm_across_two_workers_sharing_redis(
    make_app: AppFactory, fake: FakeWeChat, db: SessionFactory, redis_url: str
) -> None:
    shared = {"redis_url": redis_url, "redis_namespace": f"storm-{fake.url.rsplit(':', 1)[1]}"}
    workers = [await make_app(**shared), await make_app(**shared)]
    xml = Sender.text_xml("o-erin", FAQ_QUESTION, "9005")
    results = await asyncio.gather(*(Sender(workers[i % 2], app_id=fake.app_id).post(xml) for i in range(3)))
    assert all(status == 200 for status, _ in results)
    passive = [r for _, r in results if r != "success"]
    await wait_for(lambda: outbox_settled(db))
    await asyncio.sleep(0.6)
    assert len(await inbound_rows(db, "default:9005")) == 1
    assert len(passive) + len(fake.calls(CUSTOM)) == 1  # exactly one reply reached the customer
    assert len(await outbox_rows(db)) == 1


async def test_token_expiry_mid_way_one_refresh_no_lost_message(
    make_app: AppFactory, fake: FakeWeChat, db: SessionFactory
) -> None:
    wx = await make_app(wechat_reply_budget=0.0)
    sender = Sender(wx, app_id=fake.app_id)
    await sender.post(sender.text_xml("o-finn", FAQ_QUESTION, "9006"))
    await wait_for(lambda: outbox_settled(db))
    fake.expire_tokens()
    await sender.post(sender.text_xml("o-finn", FAQ_QUESTION, "9007"))
    await wait_for(lambda: outbox_settled(db, at_least=2))
    assert fake.tokens_issued == 2
    ok = [c for c in fake.calls(CUSTOM) if c.query["access_token"].startswith(("FAKE1_", "FAKE2_"))]
    assert len(ok) == 3  # first send, the refused one, and its retry with the new token
    assert all(r.status == OutboxStatus.SENT for r in await outbox_rows(db))


async def test_api_down_for_a_while_then_delivered(make_app: AppFactory, fake: FakeWeChat, db: SessionFactory) -> None:
    wx = await make_app(wechat_reply_budget=0.0)
    fake.down = True
    sender = Sender(wx, app_id=fake.app_id)
    assert (await sender.post(sender.text_xml("o-gus", FAQ_QUESTION, "9008")))[1] == "success"
    await wait_for(lambda: _attempted(db))
    rows = await outbox_rows(db)
    assert rows[0].status == OutboxStatus.PENDING and "503" in (rows[0].last_error or "")
    fake.down = False
    await wait_for(lambda: outbox_settled(db), within=90)
    rows = await outbox_rows(db)
    assert rows[0].status == OutboxStatus.SENT and rows[0].attempts >= 2
    delivered = [c for c in fake.calls(CUSTOM) if c.json and c.json["touser"] == "o-gus"]
    assert len(delivered) == 1  # while down even the token fetch failed; then exactly one send
    assert len(fake.calls("/cgi-bin/token")) >= 2


async def _attempted(db: SessionFactory) -> bool:
    rows = await outbox_rows(db)
    return bool(rows) and rows[0].attempts >= 1


async def test_45015_without_template_is_recorded_as_failed(
    make_app: AppFactory, fake: FakeWeChat, db: SessionFactory
) -> None:
    wx = await make_app(wechat_reply_budget=0.0)
    fake.window_closed.add("o-hana")
    await Sender(wx, app_id=fake.app_id).post(Sender.text_xml("o-hana", FAQ_QUESTION, "9009"))
    await wait_for(lambda: outbox_settled(db))
    row = (await outbox_rows(db))[0]
    assert row.status == OutboxStatus.FAILED and "45015" in (row.last_error or "")
    assert fake.calls("/cgi-bin/message/template/send") == []


async def test_45015_falls_back_to_the_configured_template(
    make_app: AppFactory, fake: FakeWeChat, db: SessionFactory
) -> None:
    wx = await make_app(wechat_reply_budget=0.0, wechat_fallback_template_id="TPL-REPLY")
    fake.window_closed.add("o-ivy")
    await Sender(wx, app_id=fake.app_id).post(Sender.text_xml("o-ivy", FAQ_QUESTION, "9010"))
    await wait_for(lambda: outbox_settled(db))
    row = (await outbox_rows(db))[0]
    assert (row.status, row.delivered_via) == (OutboxStatus.SENT, "template")
    sent = fake.calls("/cgi-bin/message/template/send")
    assert len(sent) == 1 and sent[0].json and sent[0].json["template_id"] == "TPL-REPLY"
    assert FAQ_ANSWER_PART in sent[0].json["data"]["keyword1"]["value"]


async def test_outside_48h_window_no_api_call_is_wasted(wx: Any, fake: FakeWeChat, db: SessionFactory) -> None:
    sender = Sender(wx, app_id=fake.app_id)
    await sender.post(sender.text_xml("o-jack", "你好", "9011"))
    async with transaction(db) as session:
        identity = (await session.exec(select(ChannelIdentity).where(ChannelIdentity.external_id == "o-jack"))).one()
        identity.last_inbound_at = utcnow() - timedelta(hours=49)
        session.add(identity)
        conversation = await current_conversation(
            session,
            customer_id=identity.customer_id,
            channel="wechat_oa",
            app_id="default",
            external_id="o-jack",
            now=utcnow(),
        )
        await record_outbound(session, conversation=conversation, text="您的会员积分即将过期")  # e.g. a care message
    wx.app[outbox_key].poke()
    await wait_for(lambda: outbox_settled(db))
    care = (await outbox_rows(db))[-1]
    assert care.status == OutboxStatus.FAILED and "48" in (care.last_error or "")
    assert not [c for c in fake.calls(CUSTOM) if c.json and "积分" in c.json["text"]["content"]]


async def test_45047_gives_up_with_reason(make_app: AppFactory, fake: FakeWeChat, db: SessionFactory) -> None:
    wx = await make_app(wechat_reply_budget=0.0)
    fake.fail(CUSTOM, errcode=45047)
    await Sender(wx, app_id=fake.app_id).post(Sender.text_xml("o-kim", FAQ_QUESTION, "9012"))
    await wait_for(lambda: outbox_settled(db))
    row = (await outbox_rows(db))[0]
    assert row.status == OutboxStatus.FAILED and "45047" in (row.last_error or "")


async def test_busy_minus_one_is_retried(make_app: AppFactory, fake: FakeWeChat, db: SessionFactory) -> None:
    wx = await make_app(wechat_reply_budget=0.0)
    fake.fail(CUSTOM, errcode=-1)
    await Sender(wx, app_id=fake.app_id).post(Sender.text_xml("o-lee", FAQ_QUESTION, "9013"))
    await wait_for(lambda: outbox_settled(db), within=90)
    row = (await outbox_rows(db))[0]
    assert row.status == OutboxStatus.SENT and row.attempts == 2


# --- refusals: each answered with an error, nothing stored -----------------------------------


async def test_bad_signature_is_403_and_nothing_stored(wx: Any, fake: FakeWeChat, db: SessionFactory) -> None:
    sender = Sender(wx, app_id=fake.app_id)
    status, _ = await sender.post(sender.text_xml("o-x", "你好"), signature="0" * 40)
    assert status == 403
    status, _ = await sender.post(sender.text_xml("o-x", "你好"), encrypted=True, signature="0" * 40)
    assert status == 403
    assert await inbound_rows(db) == []


async def test_timestamp_outside_replay_window_is_403(wx: Any, fake: FakeWeChat, db: SessionFactory) -> None:
    import time

    sender = Sender(wx, app_id=fake.app_id)
    status, _ = await sender.post(sender.text_xml("o-x", "你好"), timestamp=int(time.time()) - 3600)
    assert status == 403 and await inbound_rows(db) == []


async def test_wrong_appid_in_encrypted_payload_is_403(wx: Any, fake: FakeWeChat, db: SessionFactory) -> None:
    sender = Sender(wx, app_id=fake.app_id)
    other = Cipher(TOKEN, AES_KEY, "wx_someone_else")
    status, _ = await sender.post(sender.text_xml("o-x", "你好"), encrypted=True, cipher=other)
    assert status == 403 and await inbound_rows(db) == []


async def test_hostile_xml_and_oversize_bodies_are_refused(wx: Any, fake: FakeWeChat, db: SessionFactory) -> None:
    from tests.channels.test_wechat_parsing import BILLION_LAUGHS, XXE

    sender = Sender(wx, app_id=fake.app_id)
    for hostile in (BILLION_LAUGHS, XXE):
        assert (await sender.post(hostile))[0] == 400
        assert (await sender.post(hostile, encrypted=True))[0] == 400
    huge = sender.text_xml("o-x", "长" * 40_000)
    assert (await sender.post(huge))[0] == 413
    assert (await sender.post(b"<xml><unclosed>"))[0] == 400
    assert await inbound_rows(db) == []


async def test_unknown_type_is_stored_and_acknowledged(wx: Any, fake: FakeWeChat, db: SessionFactory) -> None:
    sender = Sender(wx, app_id=fake.app_id)
    xml = ("<xml><ToUserName>gh</ToUserName><FromUserName>o-new</FromUserName><CreateTime>1</CreateTime>"
           "<MsgType>hologram</MsgType><MsgId>9099</MsgId></xml>")  # fmt: skip
    status, _ = await sender.post(xml)
    assert status == 200
    rows = await inbound_rows(db, "default:9099")
    assert len(rows) == 1 and rows[0].kind == "unknown"


# --- lifecycle ---------------------------------------------------------------------------------


async def test_subscribe_welcomes_and_unsubscribe_unfollows(wx: Any, fake: FakeWeChat, db: SessionFactory) -> None:
    fake.users["o-sub"] = {"unionid": "union-sub"}
    sender = Sender(wx, app_id=fake.app_id)
    status, reply = await sender.post(sender.event_xml("o-sub", "subscribe", EventKey="qrscene_42", Ticket="T"))
    assert status == 200 and "欢迎" in reply_content(reply)
    rows = await inbound_rows(db)
    assert rows[0].kind == "event" and rows[0].payload["event"] == "subscribe" and rows[0].payload["scene"] == "42"
    await wait_for(lambda: _identity_has_unionid(db, "o-sub"))
    status, reply = await sender.post(sender.event_xml("o-sub", "unsubscribe"))
    assert (status, reply) == (200, "success")
    async with db() as session:
        identity = (await session.exec(select(ChannelIdentity).where(ChannelIdentity.external_id == "o-sub"))).one()
    assert identity.status == IdentityStatus.UNFOLLOWED and identity.unionid == "union-sub"
    async with db() as session:
        consent = (await session.exec(select(Consent).where(Consent.customer_id == identity.customer_id))).one()
    assert (consent.granted, consent.channel, consent.purpose) == (False, "wechat_oa", "care")


async def _identity_has_unionid(db: SessionFactory, external_id: str) -> bool:
    async with db() as session:
        identity = (
            await session.exec(select(ChannelIdentity).where(ChannelIdentity.external_id == external_id))
        ).first()
    return bool(identity and identity.unionid)


async def test_dedup_claim_is_short_lived_until_the_message_is_stored(make_app: AppFactory, redis_url: str) -> None:
    import redis.asyncio as aioredis

    from bot.channels.wechat_common import IN_FLIGHT_TTL, _seen_key, claim_dedup, confirm_dedup

    wx = await make_app(redis_url=redis_url)
    key = f"wechat_oa:default:{uuid.uuid4().hex}"
    assert await claim_dedup(wx.app, key)
    assert not await claim_dedup(wx.app, key)  # a concurrent retry on any worker is dropped
    client = aioredis.from_url(redis_url)
    try:
        assert 0 < await client.ttl(_seen_key(wx.app, key)) <= IN_FLIGHT_TTL  # a crash frees it soon
        await confirm_dedup(wx.app, key)
        assert await client.ttl(_seen_key(wx.app, key)) > IN_FLIGHT_TTL
    finally:
        await client.aclose()
