"""`huike wechat menu push` and `huike wechat simulate` against the fake WeChat API and a real app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.cli.wechat import DEFAULT_MENU, build_callback, load_menu, push_menu
from tests.channels.conftest import AES_KEY, FAQ_ANSWER_PART, FAQ_QUESTION, TOKEN, reply_content
from tests.fakes.wechat_server import FakeWeChat


async def test_menu_push_sends_the_configured_menu(fake: FakeWeChat, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUIKE_WECHAT_APP_ID", fake.app_id)
    monkeypatch.setenv("HUIKE_WECHAT_APP_SECRET", fake.secret)
    monkeypatch.setenv("HUIKE_WECHAT_API_BASE", fake.url)
    monkeypatch.delenv("HUIKE_REDIS_URL", raising=False)
    result = await push_menu(load_menu(DEFAULT_MENU))
    assert result["errcode"] == 0
    assert fake.menu is not None and [b["name"] for b in fake.menu["button"]] == ["常见问题", "人工客服", "会员中心"]


def test_menu_file_is_validated(tmp_path: Path) -> None:
    import typer

    bad = tmp_path / "menu.yml"
    bad.write_text("button: [" + ", ".join(["{name: a, type: click, key: k}"] * 4) + "]", encoding="utf-8")
    with pytest.raises(typer.BadParameter):
        load_menu(bad)


@pytest.mark.parametrize("encrypted", [False, True])
async def test_simulated_callback_is_answered(wx: Any, fake: FakeWeChat, encrypted: bool) -> None:
    from bot.channels.wechat_common import Cipher, safe_xml_dict

    query, body = build_callback(text=FAQ_QUESTION, openid="o-cli", event=None, token=TOKEN, app_id=fake.app_id,
                                 aes_key=AES_KEY, encrypted=encrypted)  # fmt: skip
    resp = await wx.post("/channels/wechat/default", params=query, data=body)
    reply = await resp.text()
    assert resp.status == 200
    if encrypted:
        env = safe_xml_dict(reply)
        reply = Cipher(TOKEN, AES_KEY, fake.app_id).decrypt(env["Encrypt"], env["MsgSignature"], env["TimeStamp"],
                                                            env["Nonce"])  # fmt: skip
    assert FAQ_ANSWER_PART in reply_content(reply)
