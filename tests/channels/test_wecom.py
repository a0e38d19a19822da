"""WeCom application callbacks and 微信客服 (kf) end to end against the fake WeChat API."""

from __future__ import annotations

import time
import uuid
from typing import Any

from sqlmodel import select

from bot.channels import wechat_kf
from bot.channels.wechat_common import Cipher, render_xml, safe_xml_dict
from bot.keys import bus_key, outbox_key
from models import ChannelIdentity, Conversation, ConversationState, IdentityStatus, OutboxStatus, utcnow
from models.wechat import WeChatKfCursor
from scrm.db import SessionFactory, transaction
from scrm.identity import resolve_live_id
from scrm.interactions import record_outbound
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

PATH = "/channels/wecom/default"


def wecom_sender(client: Any, fake: FakeWeChat) -> Sender:
    return Sender(client, app_id=fake.corp_id, path=PATH, wecom=True)


def contact_event(change: str, external_userid: str, user: str = "zhangsan") -> str:
    return render_xml({
        "ToUserName": "ww_fake_corp", "FromUserName": "sys", "CreateTime": str(int(time.time())),
        "MsgType": "event", "Event": "change_external_contact", "ChangeType": change, "UserID": user,
        "ExternalUserID": external_userid, "WelcomeCode": "WC1",
    })  # fmt: skip


def kf_event(open_kfid: str = "wk1") -> str:
    return render_xml({"ToUserName": "ww_fake_corp", "CreateTime": str(int(time.time())), "MsgType": "event",
                       "Event": "kf_msg_or_event", "Token": f"T{uuid.uuid4().hex[:6]}",
                       "OpenKfId": open_kfid})  # fmt: skip


async def test_url_verification_decrypts_echostr(wx: Any, fake: FakeWeChat) -> None:
    ts, nonce = str(int(time.time())), "n2"
    envelope = safe_xml_dict(Cipher(TOKEN, AES_KEY, fake.corp_id, wecom=True).encrypt("echo-4711", nonce, ts))
    q = {"timestamp": ts, "nonce": nonce, "echostr": envelope["Encrypt"], "msg_signature": envelope["MsgSignature"]}
    ok = await wx.get(PATH, params=q)
    assert ok.status == 200 and await ok.text() == "echo-4711"
    bad = await wx.get(PATH, params={**q, "msg_signature": "0" * 40})
    assert bad.status == 403


async def test_encrypted_text_gets_encrypted_faq_reply(wx: Any, fake: FakeWeChat, db: SessionFactory) -> None:
    sender = wecom_sender(wx, fake)
    status, reply = await sender.post(sender.text_xml("lisi", FAQ_QUESTION, "7001", to=fake.corp_id))
    assert status == 200 and FAQ_ANSWER_PART in reply_content(reply)
    rows = await inbound_rows(db, "default:7001")
    assert len(rows) == 1 and rows[0].channel == "wecom"


async def test_plaintext_or_wrong_corp_is_refused(wx: Any, fake: FakeWeChat, db: SessionFactory) -> None:
    sender = wecom_sender(wx, fake)
    status, _ = await sender.post(sender.text_xml("lisi", "你好"), encrypted=False)
    assert status in (400, 403)
    other = Cipher(TOKEN, AES_KEY, "ww_other_corp", wecom=True)
    status, _ = await sender.post(sender.text_xml("lisi", "你好"), cipher=other)
    assert status == 403
    assert await inbound_rows(db) == []


async def test_external_contact_follows_staff_and_merges_with_official_account(
    wx: Any, fake: FakeWeChat, db: SessionFactory
) -> None:
    fake.users["o-merge"] = {"unionid": "union-merge"}
    fake.external_contacts["wm_merge"] = {
        "external_contact": {"external_userid": "wm_merge", "name": "王女士", "unionid": "union-merge"},
        "follow_user": [{"userid": "zhangsan"}],
    }
    oa = Sender(wx, app_id=fake.app_id)
    assert (await oa.post(oa.event_xml("o-merge", "subscribe")))[0] == 200
    await wait_for(lambda: _unionid_set(db, "o-merge"))
    status, _ = await wecom_sender(wx, fake).post(contact_event("add_external_contact", "wm_merge"))
    assert status == 200
    await wait_for(lambda: _unionid_set(db, "wm_merge"))
    await wait_for(lambda: _called(fake, "/cgi-bin/externalcontact/send_welcome_msg"))
    welcome = fake.calls("/cgi-bin/externalcontact/send_welcome_msg")[0].json or {}
    assert welcome["welcome_code"] == "WC1" and "欢迎" in welcome["text"]["content"]
    async with db() as session:
        ids = {i.external_id: i for i in (await session.exec(select(ChannelIdentity))).all()}
        assert ids["wm_merge"].follow_user == "zhangsan"
        live = {await resolve_live_id(session, i.customer_id) for i in ids.values()}
    assert len(live) == 1  # one customer behind both identities
    status, _ = await wecom_sender(wx, fake).post(contact_event("del_external_contact", "wm_merge"))
    async with db() as session:
        identity = (await session.exec(select(ChannelIdentity).where(ChannelIdentity.external_id == "wm_merge"))).one()
    assert identity.status == IdentityStatus.UNFOLLOWED


async def _unionid_set(db: SessionFactory, external_id: str) -> bool:
    async with db() as session:
        row = (await session.exec(select(ChannelIdentity).where(ChannelIdentity.external_id == external_id))).first()
    return bool(row and row.unionid)


# --- 微信客服 --------------------------------------------------------------------------------


async def test_kf_event_pulls_messages_answers_and_keeps_the_cursor(
    make_app: AppFactory, fake: FakeWeChat, db: SessionFactory
) -> None:
    wx = await make_app()
    fake.add_kf_message("wk1", "wm_k1", FAQ_QUESTION)
    fake.kf_messages["wk1"].append({"msgid": "echo1", "open_kfid": "wk1", "external_userid": "wm_k1",
                                    "send_time": int(time.time()), "origin": 5, "msgtype": "text",
                                    "text": {"content": "客服自己发的"}})  # fmt: skip
    status, reply = await wecom_sender(wx, fake).post(kf_event())
    assert (status, reply) == (200, "success")
    await wait_for(lambda: _kf_sent(fake, 1))
    await wait_for(lambda: outbox_settled(db))
    sent = fake.calls("/cgi-bin/kf/send_msg")
    assert sent[0].json and sent[0].json["touser"] == "wm_k1" and sent[0].json["open_kfid"] == "wk1"
    assert FAQ_ANSWER_PART in sent[0].json["text"]["content"]
    assert [m.text for m in await inbound_rows(db)] == [FAQ_QUESTION]  # the servicer's echo is not a customer msg
    assert await _cursor(db) == "2"
    # the same event again, then a restart (a new worker) with one new message: nothing repeats or is skipped
    await wecom_sender(wx, fake).post(kf_event())
    fake.add_kf_message("wk1", "wm_k1", "你好")
    restarted = await make_app()
    await wecom_sender(restarted, fake).post(kf_event())
    await wait_for(lambda: _kf_sent(fake, 2))
    await wait_for(lambda: outbox_settled(db))
    assert [m.text for m in await inbound_rows(db)] == [FAQ_QUESTION, "你好"]
    assert len(fake.calls("/cgi-bin/kf/send_msg")) == 2
    assert await _cursor(db) == "3"


async def _kf_sent(fake: FakeWeChat, n: int) -> bool:
    return len(fake.calls("/cgi-bin/kf/send_msg")) >= n


async def _cursor(db: SessionFactory) -> str:
    async with db() as session:
        return (await session.exec(select(WeChatKfCursor.cursor))).one()


async def test_kf_enter_session_welcome_uses_the_event_code(wx: Any, fake: FakeWeChat, db: SessionFactory) -> None:
    event = {"event_type": "enter_session", "open_kfid": "wk1", "external_userid": "wm_new", "scene": "123",
             "welcome_code": "WELCOME1"}  # fmt: skip
    fake.kf_messages["wk1"].append({"msgid": "ev1", "open_kfid": "wk1", "send_time": int(time.time()), "origin": 4,
                                    "msgtype": "event", "event": event})  # fmt: skip
    await wecom_sender(wx, fake).post(kf_event())
    await wait_for(lambda: _called(fake, "/cgi-bin/kf/send_msg_on_event"))
    call = fake.calls("/cgi-bin/kf/send_msg_on_event")[0]
    assert call.json and call.json["code"] == "WELCOME1" and "欢迎" in call.json["text"]["content"]


async def _called(fake: FakeWeChat, path: str) -> bool:
    return bool(fake.calls(path))


async def test_kf_limits_five_replies_and_48_hours(wx: Any, fake: FakeWeChat, db: SessionFactory) -> None:
    fake.add_kf_message("wk1", "wm_lim", "你好")
    await wecom_sender(wx, fake).post(kf_event())
    await wait_for(lambda: _kf_sent(fake, 1))
    await wait_for(lambda: outbox_settled(db))
    answered = len(await outbox_rows(db))  # the bot's own reply(ies) to "你好" count towards the 5
    async with transaction(db) as session:
        conversation = (await session.exec(select(Conversation).where(Conversation.external_id == "wm_lim"))).one()
        for i in range(6 - answered):
            await record_outbound(session, conversation=conversation, text=f"补充说明 {i}")
    wx.app[outbox_key].poke()
    await wait_for(lambda: outbox_settled(db, at_least=6))
    rows = await outbox_rows(db)
    assert sorted(r.status for r in rows) == sorted([OutboxStatus.SENT] * 5 + [OutboxStatus.FAILED])
    failed = next(r for r in rows if r.status == OutboxStatus.FAILED)
    assert "5" in (failed.last_error or "")
    async with transaction(db) as session:
        identity = (await session.exec(select(ChannelIdentity).where(ChannelIdentity.external_id == "wm_lim"))).one()
        identity.last_inbound_at = utcnow().replace(year=2020)
        session.add(identity)
        conversation = (await session.exec(select(Conversation).where(Conversation.external_id == "wm_lim"))).one()
        await record_outbound(session, conversation=conversation, text="三天后的消息")
    wx.app[outbox_key].poke()
    await wait_for(lambda: outbox_settled(db))
    last = (await outbox_rows(db))[-1]
    assert last.status == OutboxStatus.FAILED and "48" in (last.last_error or "")
    assert len(fake.calls("/cgi-bin/kf/send_msg")) == 5


async def test_kf_session_state_follows_agent_takeover_and_handback(
    wx: Any, fake: FakeWeChat, db: SessionFactory
) -> None:
    fake.add_kf_message("wk1", "wm_st", "你好")
    await wecom_sender(wx, fake).post(kf_event())
    await wait_for(lambda: _kf_sent(fake, 1))
    for state, expected in ((ConversationState.AGENT, 3), (ConversationState.BOT, 1)):
        async with transaction(db) as session:
            conversation = (await session.exec(select(Conversation).where(Conversation.external_id == "wm_st"))).one()
            conversation.state = state
            session.add(conversation)
        await wx.app[bus_key].publish("conversation.changed", {"conversation_id": conversation.id})
        await wait_for(lambda expected=expected: _kf_state(fake, expected))  # type: ignore[misc]
    trans = [c.json["service_state"] for c in fake.calls("/cgi-bin/kf/service_state/trans") if c.json]
    assert trans == [3, 1]
    assert await wechat_kf.transfer(wx.app, -1) is None  # unknown / non-kf conversations are left alone


async def _kf_state(fake: FakeWeChat, state: int) -> bool:
    return fake.kf_states.get(("wk1", "wm_st")) == state


async def test_kf_sync_survives_an_api_failure(wx: Any, fake: FakeWeChat, db: SessionFactory) -> None:
    fake.add_kf_message("wk1", "wm_f", FAQ_QUESTION)
    fake.fail("/cgi-bin/kf/sync_msg", status=502)
    assert await wechat_kf.sync(wx.app, "default", "wk1", "T") == 0
    assert await inbound_rows(db) == []
    assert await wechat_kf.sync(wx.app, "default", "wk1", "T") == 1
    assert len(await inbound_rows(db)) == 1
