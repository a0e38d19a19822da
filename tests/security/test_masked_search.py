"""A role that sees personal data masked cannot filter on it (review issue 15, finding 2).

The reviewer rebuilt a masked phone in ~40 requests with `GET /customers?q=<prefix>` digit by digit, and
`segments:preview` answered the same question for phone and birthday conditions.
"""

from __future__ import annotations

from typing import Any

from bot.app import create_app
from bot.web.scrm import lookup_policy_key
from config.settings import Settings
from tests.conftest import login_as
from tests.web.conftest import make_user, sign_in

HIDDEN = "13700001234"


async def _customers(client: Any, headers: dict[str, str]) -> None:
    made = await client.post("/api/v1/customers:bulk", headers=headers, json={"customers": [
        {"phone": HIDDEN, "name": "钱多多", "birthday": "1990-05-17"},
        {"phone": "13900000002", "name": "张_三"},
        {"phone": "13900000003", "name": "张三丰"},
    ]})  # fmt: skip
    assert made.status == 200, await made.text()


async def probe(client: Any, headers: dict[str, str], budget: int = 40) -> tuple[int, str, int | None]:
    """The reviewer's attack with their ~40 requests: extend a known prefix one digit at a time while the search
    still finds someone; when no digit does, guess complete numbers instead.
    Returns (requests made, digits recovered beyond the prefix, request number of the first 429)."""
    known, requests, first_429 = "137", 0, None

    async def ask(q: str) -> bool:
        nonlocal requests, first_429
        requests += 1
        resp = await client.get("/api/v1/customers", params={"q": q}, headers=headers)
        if resp.status == 429 and first_429 is None:
            first_429 = requests
        return resp.status == 200 and (await resp.json())["total"] > 0

    while len(known) < 11 and requests < budget:
        extended = [d for d in "0123456789" if await ask(known + d)]
        if not extended:
            break
        known += extended[0]
    guess = int(known.ljust(11, "0"))
    while requests < budget:
        await ask(str(guess))
        guess += 1
    return requests, known[3:], first_429


async def test_agent_cannot_rebuild_a_masked_phone_digit_by_digit(client: Any) -> None:
    await _customers(client, await login_as(client, "supervisor"))
    client.session.cookie_jar.clear()
    agent = await login_as(client, "agent")
    requests, recovered, first_429 = await probe(client, agent)
    limit = client.app[lookup_policy_key].per_window
    print(f"\ndigit-by-digit probe: {requests} requests, {len(recovered)} digits recovered, 429 after {limit}")
    assert requests == 40 and recovered == "" and first_429 == limit + 1


async def test_agent_finds_a_customer_only_by_a_complete_phone_number(client: Any) -> None:
    await _customers(client, await login_as(client, "supervisor"))
    client.session.cookie_jar.clear()
    agent = await login_as(client, "agent")
    for q in ("%", "_", "1370000", "钱", HIDDEN[:-1]):
        refused = await client.get("/api/v1/customers", params={"q": q}, headers=agent)
        assert refused.status == 422 and "完整的手机号" in (await refused.json())["message"], q
    for q in (HIDDEN, "+86 137-0000-1234", "137 0000 1234", "１３７００００１２３４", "008613700001234"):
        found = await (await client.get("/api/v1/customers", params={"q": q}, headers=agent)).json()
        assert [(c["name"], c["phone"]) for c in found["items"]] == [("钱**", "137****1234")], q


async def test_lookup_limit_is_per_user_and_shared_by_workers_through_redis(
    settings: Settings, seeded_faq: int, redis_url: str, aiohttp_client: Any, browsers: Any
) -> None:
    shared = settings.model_copy(update={"redis_url": redis_url})
    worker_a = await aiohttp_client(create_app(shared))
    worker_b = await aiohttp_client(create_app(shared))
    for worker in (worker_a, worker_b):
        worker.app[lookup_policy_key].per_window = 3
    one, other = await make_user(worker_a, "agent"), await make_user(worker_a, "agent")
    on_a, on_b, other_b = browsers(worker_a), browsers(worker_b), browsers(worker_b)
    heads_a, heads_b = await sign_in(on_a, one.username), await sign_in(on_b, one.username)
    other_heads = await sign_in(other_b, other.username)

    async def lookup(http: Any, headers: dict[str, str]) -> int:
        return (await http.get("/api/v1/customers", params={"q": HIDDEN}, headers=headers)).status

    assert [await lookup(on_a, heads_a), await lookup(on_b, heads_b), await lookup(on_a, heads_a)] == [200] * 3
    assert await lookup(on_b, heads_b) == 429  # the same agent on the other worker: the shared window is spent
    assert await lookup(other_b, other_heads) == 200  # per user


async def test_supervisor_search_takes_wildcards_literally(client: Any) -> None:
    supervisor = await login_as(client, "supervisor")
    await _customers(client, supervisor)

    async def names(q: str) -> list[str]:
        found = await (await client.get("/api/v1/customers", params={"q": q}, headers=supervisor)).json()
        return sorted(c["name"] for c in found["items"])

    assert await names("%") == []
    assert await names("_") == ["张_三"]
    assert await names("张") == ["张_三", "张三丰"]
    assert await names("1370000") == ["钱多多"]


async def test_segment_preview_follows_the_tag_rule_preview_rule(client: Any) -> None:
    supervisor = await login_as(client, "supervisor")
    await _customers(client, supervisor)
    questions = [
        {"attr": "phone", "op": "eq", "value": HIDDEN},
        {"attr": "phone", "op": "startswith", "value": "13700"},
        {"attr": "birthday", "op": "eq", "value": "1990-05-17"},
    ]
    for conditions in questions:
        answer = await client.post("/api/v1/segments:preview", json={"conditions": conditions}, headers=supervisor)
        assert answer.status == 200 and (await answer.json())["count"] == 1
    client.session.cookie_jar.clear()
    agent = await login_as(client, "agent")
    for conditions in questions:
        for route in ("/api/v1/segments:preview", "/api/v1/tag-rules:preview"):
            refused = await client.post(route, json={"conditions": conditions}, headers=agent)
            assert refused.status == 403, route
