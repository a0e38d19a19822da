"""The outside review's hostile inputs (issue 15), as data: each must get a 4xx, never a 5xx.

Shared by the pytest cases (tests/security/test_edge.py, against the in-process test server) and the
live probe (tests/security/probe.py, `make security`), so both send exactly the same requests.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from bot.channels.wechat_common import render_xml, sign

DAYS = ("0001-01-01", "9999-12-31")
LONG = "长" * 33  # one over the 32-character columns
ID_TOO_LONG = "o" + "x" * 200  # over the 128-character id columns


@dataclass(frozen=True)
class Probe:
    name: str
    role: str  # anonymous | agent | supervisor | admin (signed callbacks need no session)
    method: str
    path: str
    json: Any = None
    data: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # sent as-is over a socket (bytes no HTTP client would send)
    signed_by: str = ""  # a WeChat token: the query is signed with it (and a current timestamp) when sent
    expect: tuple[int, ...] = (400, 403, 404, 409, 415, 422, 429)

    @property
    def id(self) -> str:
        return self.name


def wechat_query(token: str, *, timestamp: str | None = None, nonce: str | None = None) -> str:
    ts = timestamp or str(int(time.time()))
    nonce = nonce or uuid.uuid4().hex[:10]
    return urlencode({"timestamp": ts, "nonce": nonce, "signature": sign(token, ts, nonce)})


def text_xml(openid: str, content: str, *, encoding: str | None = None) -> str:
    fields = {"ToUserName": "gh_test", "FromUserName": openid, "CreateTime": str(int(time.time())),
              "MsgType": "text", "Content": content, "MsgId": str(uuid.uuid4().int % 10**18)}  # fmt: skip
    xml = render_xml(fields)
    return f'<?xml version="1.0" encoding="{encoding}"?>' + xml if encoding else xml


def probes(token: str) -> list[Probe]:
    """Every finding of sections 5, 7 and 11 as a request."""
    huge_ts = "9" * 400
    big = {"timestamp": huge_ts, "nonce": "n", "signature": "0" * 40}
    out = [
        Probe("wechat-timestamp-400-digits", "anonymous", "POST", "/channels/wechat/default?" + urlencode(big),
              data=text_xml("o1", "hi").encode()),
        Probe("wecom-timestamp-400-digits", "anonymous", "POST", "/channels/wecom/default?" + urlencode(
            {**big, "msg_signature": "0" * 40}), data=b"<xml><Encrypt>x</Encrypt></xml>"),
        Probe("webchat-cookie-non-ascii", "anonymous", "POST", "/api/v1/webchat/messages",
              raw=b"huike_visitor=\xff.x"),
        Probe("webchat-cookie-utf8", "anonymous", "GET", "/api/v1/webchat/messages",
              headers={"Cookie": "huike_visitor=\u00ff.x"}),
        Probe("csrf-token-non-ascii", "admin", "POST", "/api/v1/admin/faqs",
              json={"question": "q", "answer": "a"}, headers={"X-CSRF-Token": "令牌"}, expect=(403,)),
        Probe("faq-category-too-long", "admin", "POST", "/api/v1/admin/faqs",
              json={"question": "长分类", "answer": "a", "category": LONG}, expect=(422,)),
        Probe("faq-category-too-long-on-update", "admin", "PUT", "/api/v1/admin/faqs/1",
              json={"category": LONG}, expect=(404, 422)),
        Probe("user-display-name-too-long", "admin", "POST", "/api/v1/admin/users",
              json={"username": "long-name", "password": "secret-pass-1", "display_name": LONG}, expect=(422,)),
        Probe("user-display-name-too-long-on-update", "admin", "PUT", "/api/v1/admin/users/1",
              json={"display_name": LONG}, expect=(404, 422)),
        Probe("customers-bulk-points-1e30", "admin", "POST", "/api/v1/customers:bulk",
              json={"customers": [{"name": "积分", "phone": "13800000000", "points": 10**30}]}, expect=(422,)),
        Probe("json-as-text-plain", "anonymous", "POST", "/api/v1/auth/login",
              data=b'{"username": "admin", "password": "x"}', headers={"Content-Type": "text/plain"},
              expect=(415,)),
        Probe("webchat-json-as-form", "anonymous", "POST", "/api/v1/webchat/messages",
              data=b'{"text": "hi", "client_msg_id": "form-1"}',
              headers={"Content-Type": "application/x-www-form-urlencoded"}, expect=(415,)),
    ]
    for day in DAYS:
        out += [
            Probe(f"dashboard-{day}", "admin", "GET", f"/api/v1/admin/dashboard?start={day}&end={day}", expect=(422,)),
            Probe(f"complaint-report-{day}", "admin", "GET", f"/api/v1/reports/complaints?from={day}&to={day}",
                  expect=(422,)),
            Probe(f"nps-{day}", "admin", "GET", f"/api/v1/reports/nps?start={day}&end={day}", expect=(422,)),
            Probe(f"care-preview-{day}", "admin", "GET", f"/api/v1/care-rules/1/preview?date={day}",
                  expect=(404, 422)),
        ]
    for op in ("within_days", "before_days"):
        out.append(Probe(f"segment-preview-{op}-1e9", "admin", "POST", "/api/v1/segments:preview",
                         json={"conditions": {"attr": "last_active_at", "op": op, "value": 10**9}}, expect=(422,)))
    out.append(Probe("segment-preview-orders-within-1e9", "admin", "POST", "/api/v1/segments:preview",
                     json={"conditions": {"orders": {"count": {"gte": 1}, "within_days": 10**9}}}, expect=(422,)))
    for encoding in ("GBK", "UTF-16", "ISO-8859-1"):
        body = text_xml("o-enc", "你好，退货 café", encoding=encoding).encode(encoding.lower(), errors="replace")
        out.append(Probe(f"wechat-body-{encoding}", "anonymous", "POST", "/channels/wechat/default",
                         data=body, signed_by=token, expect=(400,)))
    out.append(Probe("wechat-from-user-too-long", "anonymous", "POST", "/channels/wechat/default",
                     data=text_xml(ID_TOO_LONG, "hi").encode(), signed_by=token, expect=(400,)))
    return out


@dataclass
class Answer:
    status: int
    body: str
    headers: dict[str, str]


async def send(http: Any, base: str, probe: Probe, session_headers: dict[str, str]) -> Answer:
    """One probe with an aiohttp ClientSession against `base` (http://host:port)."""
    if probe.raw is not None:
        return await _send_raw(base, probe)
    headers = {**session_headers, **probe.headers}
    if probe.json is not None:
        kwargs: dict[str, Any] = {"json": probe.json}
    else:
        kwargs = {"data": probe.data} if probe.data is not None else {}
    path = probe.path + ("?" + wechat_query(probe.signed_by) if probe.signed_by else "")
    async with http.request(probe.method, base + path, headers=headers, **kwargs) as resp:
        return Answer(resp.status, await resp.text(errors="replace"), dict(resp.headers))


async def _send_raw(base: str, probe: Probe) -> Answer:
    host, port = base.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    body = b'{"text": "hi", "client_msg_id": "raw-1"}' if probe.method == "POST" else b""
    head = (f"{probe.method} {probe.path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n").encode()  # fmt: skip
    writer.write(head + b"Cookie: " + (probe.raw or b"") + b"\r\n\r\n" + body)
    await writer.drain()
    reply = await reader.read()
    writer.close()
    status_line, _, rest = reply.partition(b"\r\n")
    return Answer(int(status_line.split()[1]), rest.decode(errors="replace"), {})
