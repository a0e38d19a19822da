"""Every fixture callback through the HTTP endpoint with a valid signature: acknowledged, never a 500,
and every customer message or event stored exactly once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.channels.wechat_common import is_customer_callback, parse_callback, to_inbound
from bot.messages import Channel
from scrm.db import SessionFactory
from tests.channels.conftest import Sender, inbound_rows
from tests.channels.test_wechat_parsing import FIXTURES, _is_envelope
from tests.fakes.wechat_server import FakeWeChat


async def test_every_fixture_through_the_endpoint(
    wx: Any, fake: FakeWeChat, db: SessionFactory, datasets: Path
) -> None:
    oa = Sender(wx, app_id=fake.app_id)
    wecom = Sender(wx, app_id=fake.corp_id, path="/channels/wecom/default", wecom=True)
    expected: set[tuple[str, str]] = set()
    for path in FIXTURES:
        is_wecom = path.parent.name == "wecom"
        body = path.read_bytes()
        if _is_envelope(path):
            # ciphertext made with someone else's key: refused cleanly (cannot decrypt / wrong id), never a 500
            status = await (wecom if is_wecom else oa).post_envelope(body)
            assert status in (400, 403), path.name
            continue
        status, _ = await (wecom.post(body) if is_wecom else oa.post(body))
        assert status == 200, path.name
        cb = parse_callback(body, wecom=is_wecom)
        if is_customer_callback(cb.data) and cb.data.get("Event") != "kf_msg_or_event":
            channel = Channel.WECOM if is_wecom else Channel.WECHAT_OA
            expected.add((channel.value, to_inbound(cb, channel=channel, account="default").channel_msg_id))
    stored = {(m.channel, m.channel_msg_id or "") for m in await inbound_rows(db)}
    assert stored == expected
    assert len(expected) > 60  # several fixtures share a MsgId, some are system notices
