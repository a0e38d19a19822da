"""Every WeChat fixture parses into a channel-neutral message; every crypto vector verifies."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from bot.channels.wechat_common import (
    CallbackRejected,
    Cipher,
    check_timestamp,
    dedup_key,
    is_customer_callback,
    open_envelope,
    parse_callback,
    safe_xml_dict,
    sign,
    to_inbound,
    verify_signature,
)
from bot.messages import Channel, Kind
from tests.conftest import DATASETS

WECHAT = DATASETS / "dev" / "wechat"
FIXTURES = sorted(WECHAT.glob("*/*.xml"))


def _vectors() -> dict[str, Any]:
    """The crypto vectors; empty lists when the shared datasets are absent (the tests then skip)."""
    path = WECHAT / "crypto_vectors.json"
    if not path.exists():
        return {"aes_vectors": [], "signature_vectors": []}
    return json.loads(path.read_text(encoding="utf-8"))


def _is_envelope(path: Path) -> bool:
    return "<Encrypt>" in path.read_text(encoding="utf-8") and "<MsgType>" not in path.read_text(encoding="utf-8")


def test_there_are_112_fixtures(datasets: Path) -> None:
    assert len(FIXTURES) == 112


@pytest.mark.parametrize(
    "path", [p for p in FIXTURES if not _is_envelope(p)], ids=lambda p: p.parent.name + "/" + p.name
)
def test_fixture_parses_to_inbound(path: Path) -> None:
    wecom = path.parent.name == "wecom"
    cb = parse_callback(path.read_bytes(), wecom=wecom)
    msg = to_inbound(cb, channel=Channel.WECOM if wecom else Channel.WECHAT_OA, account="default")
    expected_type = path.name.split("__")[0]
    if expected_type.startswith("event_"):
        assert msg.kind is Kind.EVENT and msg.event
    elif expected_type.startswith(("notsure", "info_")):
        assert msg.kind is Kind.UNKNOWN
    else:
        assert msg.kind.value == expected_type.removesuffix("_allfields")
    assert msg.channel_msg_id.startswith("default:") and len(msg.channel_msg_id) <= 128
    if is_customer_callback(cb.data):
        assert msg.external_id and msg.sent_at is not None


def _one(name: str, wecom: bool = False) -> Any:
    path = WECHAT / ("wecom" if wecom else "official_account") / name
    cb = parse_callback(path.read_bytes(), wecom=wecom)
    return to_inbound(cb, channel=Channel.WECOM if wecom else Channel.WECHAT_OA, account="default")


def test_message_fields_are_mapped(datasets: Path) -> None:
    text = _one("text__wechatpy.xml")
    assert (text.kind, text.text, text.external_id) == (Kind.TEXT, "this is a test", "fromUser")
    assert text.channel_msg_id == "default:1234567890123456"
    voice = _one("voice__chanxuehong.xml")
    assert voice.kind is Kind.VOICE and voice.text == "傻逼！" and voice.payload["format"] == "amr"
    loc = _one("location__wechatpy.xml")
    assert loc.kind is Kind.LOCATION and loc.payload["latitude"] and loc.payload["longitude"]
    link = _one("link__wechatpy.xml")
    assert link.kind is Kind.LINK and link.text and link.payload["url"]
    assert _one("shortvideo__chanxuehong.xml").kind is Kind.SHORTVIDEO
    assert _one("notsure__wechatpy.xml").kind is Kind.UNKNOWN


def test_events_are_mapped(datasets: Path) -> None:
    scene = _one("event_subscribe__wechatpy_2.xml")
    assert (scene.event, scene.payload["scene"]) == ("subscribe", "123123")
    plain = _one("event_subscribe__wechatpy.xml")
    assert plain.event == "subscribe" and "scene" not in plain.payload
    assert _one("event_unsubscribe__wechatpy.xml").event == "unsubscribe"
    assert _one("event_scan__wechatpy.xml").event == "SCAN"
    assert _one("event_location__wechatpy.xml").payload["latitude"]
    click = _one("event_click__wechatpy.xml")
    assert click.event == "CLICK" and click.payload["event_key"]
    assert _one("event_view__wechatpy.xml").event == "VIEW"
    tpl = _one("event_templatesendjobfinish__wechatpy.xml")
    assert tpl.event == "TEMPLATESENDJOBFINISH" and tpl.payload["status"]
    add = _one("event_change_external_contact_add_external_contact__wxjava.xml", wecom=True)
    assert add.event == "add_external_contact"
    assert add.external_id == "woAJ2GCAAAXtWyujaWJHDDGi0mACH71w" and add.payload["follow_user"] == "zhangsan"
    kf = _one("event_kf_msg_or_event__wxjava.xml", wecom=True)
    assert kf.event == "kf_msg_or_event" and kf.payload["open_kfid"] == "wkxxxxxxx" and kf.payload["token"]


def test_event_dedup_key_is_sender_time_event() -> None:
    data = {"FromUserName": "u1", "CreateTime": "123", "MsgType": "event", "Event": "subscribe"}
    assert dedup_key("default", data) == "default:u1:123:subscribe"
    assert dedup_key("default", {**data, "MsgId": "42"}) == "default:42"


# --- encrypted envelopes and crypto vectors ----------------------------------------------------


def _vector_for_envelope(path: Path) -> dict[str, Any] | None:
    encrypt = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]>", path.read_text(encoding="utf-8"), re.S)
    assert encrypt
    return next((v for v in _vectors()["aes_vectors"] if v["encrypt"] == encrypt.group(1)), None)


@pytest.mark.parametrize("path", [p for p in FIXTURES if _is_envelope(p)], ids=lambda p: p.parent.name + "/" + p.name)
def test_encrypted_envelope_opens_or_is_refused(path: Path) -> None:
    envelope = safe_xml_dict(path.read_bytes())
    vector = _vector_for_envelope(path)
    wecom = path.parent.name == "wecom"
    if vector is None:  # a placeholder or a sample whose key was never published: refused, not a crash
        cipher = Cipher("token", "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", "wx49f0ab532d5d035a", wecom)
        encrypt = envelope["Encrypt"]
        with pytest.raises(CallbackRejected) as info:
            open_envelope(envelope, cipher, msg_signature=sign("token", "1", "2", encrypt), timestamp="1", nonce="2")
        assert info.value.status in (400, 403)
        return
    cipher = Cipher(vector["token"], vector["encoding_aes_key"], vector["receive_id"], wecom)
    cb = open_envelope(
        envelope,
        cipher,
        msg_signature=vector["msg_signature"],
        timestamp=vector["timestamp"],
        nonce=vector["nonce"],
    )
    msg = to_inbound(cb, channel=Channel.WECOM if wecom else Channel.WECHAT_OA, account="default")
    assert msg.kind is Kind.TEXT and msg.external_id


@pytest.mark.parametrize("vector", _vectors()["aes_vectors"], ids=lambda v: v["id"])
def test_crypto_vector_decrypts_and_signature_checks(vector: dict[str, Any]) -> None:
    token = vector["token"] or "any-token"
    wecom = vector["platform"] == "wecom"
    cipher = Cipher(token, vector["encoding_aes_key"], vector["receive_id"], wecom)
    ts, nonce = vector["timestamp"] or "1", vector["nonce"] or "n"
    signature = vector["msg_signature"] or sign(token, ts, nonce, vector["encrypt"])
    plain = cipher.decrypt(vector["encrypt"], signature, ts, nonce)
    if vector["expected_plaintext"] is not None:
        assert plain == vector["expected_plaintext"]
    for key, value in (vector["expected_fields"] or {}).items():
        assert safe_xml_dict(plain)[key] == value
    # a flipped signature, or the right one for another id, is refused
    with pytest.raises(CallbackRejected) as bad_sig:
        cipher.decrypt(vector["encrypt"], "0" * 40, ts, nonce)
    assert bad_sig.value.status == 403
    other = Cipher(token, vector["encoding_aes_key"], "wx_not_this_account", wecom)
    with pytest.raises(CallbackRejected) as wrong_id:
        other.decrypt(vector["encrypt"], signature, ts, nonce)
    assert wrong_id.value.status == 403


@pytest.mark.parametrize("vector", _vectors()["signature_vectors"], ids=lambda v: v["id"])
def test_signature_vectors(vector: dict[str, Any]) -> None:
    parts = [vector["token"], vector["timestamp"], vector["nonce"]] + ([vector["encrypt"]] if vector["encrypt"] else [])
    verify_signature(vector["signature"], *parts)
    with pytest.raises(CallbackRejected):
        verify_signature(vector["signature"], *parts[:-1], parts[-1] + "x")


def test_encrypt_roundtrip_and_reply_envelope() -> None:
    cipher = Cipher("tok", "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", "wxapp")
    envelope = safe_xml_dict(cipher.encrypt("<xml><Content><![CDATA[你好]]></Content></xml>", "nonce1", "100"))
    assert envelope["MsgSignature"] == sign("tok", "100", "nonce1", envelope["Encrypt"])
    assert "你好" in cipher.decrypt(envelope["Encrypt"], envelope["MsgSignature"], "100", "nonce1")


# --- hostile input -----------------------------------------------------------------------------

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType><Content>&lol3;</Content><MsgId>1</MsgId></xml>"""

XXE = """<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><FromUserName>b</FromUserName><MsgType>text</MsgType><Content>&xxe;</Content></xml>"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, XXE, "<xml><unclosed>", "<notxml/>", "plain text"])
def test_hostile_or_malformed_xml_is_refused(body: str) -> None:
    with pytest.raises(CallbackRejected) as info:
        parse_callback(body.encode(), wecom=False)
    assert info.value.status == 400


def test_replay_window() -> None:
    check_timestamp("1000", 300, now=1200)
    for ts in ("600", "1600", "", "abc", None):
        with pytest.raises(CallbackRejected):
            check_timestamp(ts, 300, now=1200)
