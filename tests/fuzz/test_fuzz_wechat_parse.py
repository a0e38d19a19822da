"""Hostile WeChat callbacks: the XML parse + AES decrypt + mapping path only ever rejects cleanly.

Anything that goes wrong must surface as `CallbackRejected` (a 4xx with a reason), never as another
exception (which would be a 500 and make WeChat retry garbage forever).
"""

from __future__ import annotations

import base64
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.channels.wechat_common import (
    CallbackRejected,
    Cipher,
    is_customer_callback,
    open_envelope,
    parse_callback,
    render_xml,
    safe_xml_dict,
    sign,
    to_inbound,
)
from bot.messages import Channel
from tests.fuzz.conftest import FUZZ

TOKEN = "huike-test-token"
AES_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
APP_ID = "wx_fake_app"
MSG_TYPES = ["text", "image", "voice", "video", "shortvideo", "location", "link", "file", "event", "miniprogrampage",
             "", "TEXT", "unknown"]  # fmt: skip
EVENTS = ["subscribe", "unsubscribe", "SCAN", "CLICK", "VIEW", "LOCATION", "TEMPLATESENDJOBFINISH", "",
          "kf_msg_or_event"]  # fmt: skip
FIELDS = ["ToUserName", "FromUserName", "CreateTime", "MsgType", "Content", "MsgId", "Event", "EventKey", "MediaId",
          "PicUrl", "Location_X", "Location_Y", "Scale", "Label", "Title", "Url", "Recognition", "UnionId", "Ticket",
          "AgentID", "InfoType", "FileName", "Description"]  # fmt: skip

text_values = st.text(max_size=200) | st.sampled_from(["", " ", "0", "-1", "1e309", "NaN", "<![CDATA[x]]>", "]]>",
                                                       "&amp;", "\x00", "\ud7ff", "😀" * 50])  # fmt: skip


@st.composite
def callback_fields(draw: st.DrawFn) -> dict[str, object]:
    fields: dict[str, object] = {k: draw(text_values) for k in draw(st.lists(st.sampled_from(FIELDS), max_size=12))}
    if draw(st.booleans()):
        fields["MsgType"] = draw(st.sampled_from(MSG_TYPES))
    if draw(st.booleans()):
        fields["Event"] = draw(st.sampled_from(EVENTS))
    if draw(st.booleans()):
        fields["FromUserName"] = draw(st.text(min_size=1, max_size=40))
    if draw(st.booleans()):  # nested elements where text is expected
        fields[draw(st.sampled_from(FIELDS))] = {"a": draw(text_values), "b": [draw(text_values), draw(text_values)]}
    return fields


def xml_of(fields: dict[str, object]) -> str:
    def render(value: object) -> str:
        if isinstance(value, dict):
            return "".join(f"<{k}>{render(v)}</{k}>" for k, v in value.items())
        if isinstance(value, list):
            return "".join(f"<i>{render(v)}</i>" for v in value)
        text = str(value).replace("]]>", "]]]]><![CDATA[>")
        return f"<![CDATA[{text}]]>"

    return "<xml>" + "".join(f"<{k}>{render(v)}</{k}>" for k, v in fields.items()) + "</xml>"


HOSTILE_XML = [
    '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
    "<xml><Content>&b;</Content></xml>",
    '<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml><Content>&xxe;</Content></xml>',
    "<xml>" + "<a>" * 5000 + "</a>" * 5000 + "</xml>",
    "<xml><MsgType>text</MsgType><Content>unterminated",
    "<notxml/>",
    "\ufeff<xml></xml>",
    "<xml><MsgType><![CDATA[text]]></MsgType><FromUserName>o1</FromUserName><Content/></xml>",
]


def must_reject_cleanly(body: bytes | str) -> None:
    try:
        cb = parse_callback(body, wecom=False)
        if is_customer_callback(cb.data):
            to_inbound(cb, channel=Channel.WECHAT_OA, account="default")
    except CallbackRejected as exc:
        assert 400 <= exc.status < 500


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes_never_escape(body: bytes) -> None:
    must_reject_cleanly(body)


@FUZZ
@given(callback_fields())
def test_structured_callbacks_parse_or_reject(fields: dict[str, object]) -> None:
    must_reject_cleanly(xml_of(fields))
    must_reject_cleanly(xml_of(fields).encode("utf-8", "surrogatepass"))


@FUZZ
@given(st.sampled_from(HOSTILE_XML), st.text(max_size=50))
def test_hostile_xml_is_rejected_or_inert(doc: str, suffix: str) -> None:
    for body in (doc, doc + suffix):
        try:
            data = safe_xml_dict(body)
            assert "root:" not in str(data.get("Content", ""))[:10_000]  # no external entity was ever resolved
        except CallbackRejected:
            pass
        must_reject_cleanly(body)


@FUZZ
@given(
    encrypt=st.text(max_size=400) | st.binary(max_size=300).map(lambda b: base64.b64encode(b).decode()),
    signature=st.none() | st.text(alphabet=st.characters(max_codepoint=127), max_size=64),
    timestamp=st.text(max_size=12),
    nonce=st.text(max_size=16),
    sign_it=st.booleans(),
)
def test_garbage_ciphertext_is_rejected(
    encrypt: str, signature: str | None, timestamp: str, nonce: str, sign_it: bool
) -> None:
    cipher = Cipher(TOKEN, AES_KEY, APP_ID)
    if sign_it:  # correctly signed garbage gets past the signature check into the AES layer
        signature = sign(TOKEN, timestamp, nonce, encrypt)
    try:
        open_envelope({"Encrypt": encrypt}, cipher, msg_signature=signature, timestamp=timestamp, nonce=nonce)
    except CallbackRejected as exc:
        assert exc.status in (400, 403)


@FUZZ
@given(callback_fields(), st.sampled_from([APP_ID, "wx_other_app"]))
def test_encrypted_structured_callbacks(fields: dict[str, object], app_id: str) -> None:
    """Well-formed envelopes around hostile content (and around another app's content)."""
    nonce, ts = "n0nce", str(int(time.time()))
    envelope = safe_xml_dict(Cipher(TOKEN, AES_KEY, app_id).encrypt(xml_of(fields), nonce, ts))
    try:
        cb = open_envelope(render_envelope(envelope), Cipher(TOKEN, AES_KEY, APP_ID),
                           msg_signature=str(envelope["MsgSignature"]), timestamp=ts, nonce=nonce)  # fmt: skip
        if is_customer_callback(cb.data):
            to_inbound(cb, channel=Channel.WECHAT_OA, account="default")
    except CallbackRejected as exc:
        assert 400 <= exc.status < 500
        if app_id != APP_ID:
            assert exc.status == 403


def render_envelope(envelope: dict[str, object]) -> dict[str, object]:
    return safe_xml_dict(render_xml({"ToUserName": APP_ID, "Encrypt": envelope["Encrypt"]}))


@pytest.mark.parametrize("signature", ["\x80", "签名", "é" * 40])
def test_non_ascii_signature_is_rejected(signature: str) -> None:
    with pytest.raises(CallbackRejected):
        open_envelope({"Encrypt": "0"}, Cipher(TOKEN, AES_KEY, APP_ID), msg_signature=signature, timestamp="1",
                      nonce="n")  # fmt: skip
