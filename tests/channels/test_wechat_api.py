"""The async WeChat client against the fake WeChat server: one shared token, one refresh, clear errors."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest
import redis.asyncio as aioredis

from bot.channels.wechat_api import (
    CachedToken,
    MemoryTokenStore,
    RedisTokenStore,
    WeChatApiError,
    WeChatClient,
    WeChatUnavailable,
    WeComClient,
)
from tests.fakes.wechat_server import FakeWeChat


@pytest.fixture
async def fake() -> AsyncIterator[FakeWeChat]:
    async with FakeWeChat() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url)
    yield client
    await client.aclose()


def oa(http: aiohttp.ClientSession, fake: FakeWeChat, store: object, timeout: float = 5.0) -> WeChatClient:
    return WeChatClient(
        http,
        app_id=fake.app_id,
        secret=fake.secret,
        base_url=fake.url,
        store=store,  # type: ignore[arg-type]
        timeout=timeout,
    )


TEXT = {"msgtype": "text", "text": {"content": "您好"}}


async def test_many_concurrent_sends_fetch_the_token_once(fake: FakeWeChat, http: aiohttp.ClientSession) -> None:
    client = oa(http, fake, MemoryTokenStore())
    await asyncio.gather(*(client.send_custom(f"openid{i}", TEXT) for i in range(20)))
    assert fake.tokens_issued == 1
    assert len(fake.calls("/cgi-bin/message/custom/send")) == 20
    assert fake.calls("/cgi-bin/message/custom/send")[0].json == {"touser": "openid0", **TEXT}


async def test_two_workers_share_the_token_in_redis(
    fake: FakeWeChat, http: aiohttp.ClientSession, redis: aioredis.Redis
) -> None:
    ns = f"test-{uuid.uuid4().hex[:8]}"
    workers = [oa(http, fake, RedisTokenStore(redis, ns)) for _ in range(2)]
    await asyncio.gather(*(workers[i % 2].send_custom("o1", TEXT) for i in range(20)))
    assert fake.tokens_issued == 1


async def test_expired_token_mid_way_is_refreshed_once_by_one_worker(
    fake: FakeWeChat, http: aiohttp.ClientSession, redis: aioredis.Redis
) -> None:
    ns = f"test-{uuid.uuid4().hex[:8]}"
    workers = [oa(http, fake, RedisTokenStore(redis, ns)) for _ in range(2)]
    await workers[0].send_custom("o1", TEXT)
    fake.expire_tokens()  # every worker's cached token now answers 42001
    await asyncio.gather(*(workers[i % 2].send_custom(f"o{i}", TEXT) for i in range(10)))
    assert fake.tokens_issued == 2
    assert sum(w.token_fetches for w in workers) == 2
    ok = [c for c in fake.calls("/cgi-bin/message/custom/send") if c.query["access_token"].startswith("FAKE2_")]
    assert len(ok) == 10


async def test_40001_refreshes_once_and_retries_once(fake: FakeWeChat, http: aiohttp.ClientSession) -> None:
    client = oa(http, fake, MemoryTokenStore())
    fake.fail("/cgi-bin/message/custom/send", errcode=40001)
    await client.send_custom("o1", TEXT)
    assert fake.tokens_issued == 2
    fake.fail("/cgi-bin/message/custom/send", errcode=40001, times=2)
    with pytest.raises(WeChatApiError) as info:  # a second refusal is not retried again
        await client.send_custom("o1", TEXT)
    assert info.value.errcode == 40001 and fake.tokens_issued == 3


async def test_token_is_renewed_before_it_expires(fake: FakeWeChat, http: aiohttp.ClientSession) -> None:
    store = MemoryTokenStore()
    client = oa(http, fake, store)
    await client.send_custom("o1", TEXT)
    cached = await store.read(client.cache_key)
    assert cached is not None
    await store.write(client.cache_key, CachedToken(cached.token, time.time() + 60))  # inside the margin
    await client.send_custom("o1", TEXT)
    assert fake.tokens_issued == 2


async def test_errors_are_typed(fake: FakeWeChat, http: aiohttp.ClientSession) -> None:
    client = oa(http, fake, MemoryTokenStore(), timeout=0.5)
    fake.window_closed.add("late")
    with pytest.raises(WeChatApiError) as info:
        await client.send_custom("late", TEXT)
    assert info.value.errcode == 45015 and not info.value.transient
    fake.fail("/cgi-bin/message/custom/send", errcode=-1)
    with pytest.raises(WeChatApiError) as busy:
        await client.send_custom("o1", TEXT)
    assert busy.value.transient
    fake.fail("/cgi-bin/message/custom/send", status=502)
    with pytest.raises(WeChatUnavailable):
        await client.send_custom("o1", TEXT)
    fake.fail("/cgi-bin/message/custom/send", hang=2.0)
    with pytest.raises(WeChatUnavailable):
        await client.send_custom("o1", TEXT)
    fake.down = True
    with pytest.raises(WeChatUnavailable):
        await client.send_custom("o1", TEXT)


async def test_other_endpoints(fake: FakeWeChat, http: aiohttp.ClientSession) -> None:
    client = oa(http, fake, MemoryTokenStore())
    fake.users["o1"] = {"unionid": "u-1", "nickname": "小王"}
    assert (await client.user_info("o1"))["unionid"] == "u-1"
    assert (await client.upload_media("image", "a.png", b"\x89PNG")).startswith("MEDIA_")
    await client.create_menu({"button": [{"type": "click", "name": "常见问题", "key": "FAQ"}]})
    assert fake.menu and fake.menu["button"][0]["key"] == "FAQ"
    result = await client.send_template("o1", "TPL", {"first": {"value": "您好"}}, url="https://example.com")
    assert result["msgid"]


async def test_wecom_client(fake: FakeWeChat, http: aiohttp.ClientSession) -> None:
    client = WeComClient(
        http,
        corp_id=fake.corp_id,
        secret="s",
        agent_id="1000002",
        base_url=fake.url,
        store=MemoryTokenStore(),
    )
    await client.send_app_message("zhangsan", TEXT)
    assert fake.calls("/cgi-bin/message/send")[0].json["agentid"] == 1000002
    fake.add_kf_message("wk1", "wm_ext1", "你好")
    fake.add_kf_message("wk1", "wm_ext1", "在吗")
    page = await client.kf_sync_msg(open_kfid="wk1", token="T", limit=1)
    assert page["has_more"] == 1 and page["msg_list"][0]["text"]["content"] == "你好"
    page = await client.kf_sync_msg(open_kfid="wk1", cursor=page["next_cursor"])
    assert page["has_more"] == 0 and page["msg_list"][0]["text"]["content"] == "在吗"
    await client.kf_send_msg(open_kfid="wk1", external_userid="wm_ext1", message=TEXT)
    await client.kf_trans(open_kfid="wk1", external_userid="wm_ext1", service_state=3, servicer_userid="lisi")
    assert fake.kf_states[("wk1", "wm_ext1")] == 3
    fake.external_contacts["wm_ext1"] = {
        "external_contact": {"external_userid": "wm_ext1", "unionid": "u-9"},
        "follow_user": [{"userid": "lisi"}],
    }
    assert (await client.external_contact("wm_ext1"))["external_contact"]["unionid"] == "u-9"
    assert fake.tokens_issued == 1
