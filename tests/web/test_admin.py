"""Admin: FAQ edits reach the running bot without a restart; import/export; users; channels; audit; dashboard."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import yaml
from openpyxl import load_workbook

from bot.app import create_app
from bot.keys import db_key
from config.settings import Settings
from models import AuditLog, FaqEntry, User, UserSession
from tests.web.conftest import PASSWORD, make_user, rows, sign_in


async def faq_answering(client: Any, text: str) -> FaqEntry:
    """The seeded FAQ entry whose question mentions `text`, checked to be what the bot answers with."""
    entry = next(f for f in await rows(client, FaqEntry) if text in f.question)
    resp = await client.post("/api/v1/webchat/messages", json={"text": entry.question, "client_msg_id": "probe"})
    assert (await resp.json())["replies"][0]["text"] == entry.answer
    return entry


async def test_editing_an_answer_changes_what_the_bot_says_without_restart(
    client: Any, staff: Any, visitor: Any
) -> None:
    entry = await faq_answering(client, "运费")
    supervisor = await staff("supervisor")
    new_answer = "【新】满 99 元包邮，不满 99 元收取 8 元运费。"
    resp = await supervisor.put(f"/admin/faqs/{entry.id}", {"answer": new_answer})
    assert resp.status == 200 and (await resp.json())["answer"] == new_answer

    v = await visitor()
    reply = await v.says(entry.question)
    assert reply["replies"][0]["text"] == new_answer
    [audit] = await rows(client, AuditLog, AuditLog.action == "faq.update")
    assert audit.actor_id == supervisor.id and audit.object_id == str(entry.id)
    assert audit.before == {"answer": entry.answer} and audit.after == {"answer": new_answer}


async def test_a_new_faq_is_learned_by_the_running_bot(client: Any, staff: Any, visitor: Any) -> None:
    supervisor = await staff("supervisor")
    body = {
        "question": "你们支持数字人民币付款吗？",
        "similar_questions": ["可以用数字人民币吗", "数字人民币能不能支付"],
        "answer": "支持的，结算时选择「数字人民币」即可付款。",
        "category": "支付",
    }
    created = await supervisor.post("/admin/faqs", body)
    assert created.status == 201
    faq_id = (await created.json())["id"]
    # Retraining runs in the background; wait (bounded) until the 试一试 box sees the new entry.
    for _ in range(240):
        tried = await (await supervisor.post("/admin/faqs/try", {"text": "能用数字人民币付钱吗"})).json()
        if tried["faq_id"] == faq_id:
            break
        await asyncio.sleep(0.25)
    assert tried["decision"] == "answer" and tried["answer"] == body["answer"]
    assert tried["hits"][0]["faq_id"] == faq_id and 0 < tried["hits"][0]["score"] <= 1
    v = await visitor()
    assert (await v.says("能用数字人民币付钱吗"))["replies"][0]["text"] == body["answer"]


async def test_disabling_an_entry_stops_the_bot_using_it(client: Any, staff: Any, visitor: Any) -> None:
    entry = await faq_answering(client, "发票")
    supervisor = await staff("supervisor")
    assert (await supervisor.put(f"/admin/faqs/{entry.id}", {"enabled": False})).status == 200
    listed = await (await supervisor.get("/admin/faqs?enabled=false")).json()
    assert [f["id"] for f in listed] == [entry.id]
    for _ in range(240):
        tried = await (await supervisor.post("/admin/faqs/try", {"text": entry.question})).json()
        if entry.id not in [h["faq_id"] for h in tried["hits"]]:
            break
        await asyncio.sleep(0.25)
    v = await visitor()
    replies = (await v.says(entry.question))["replies"]
    assert all(r["text"] != entry.answer for r in replies)


async def test_search_filter_and_categories(client: Any, staff: Any) -> None:
    supervisor = await staff("supervisor")
    found = await (await supervisor.get("/admin/faqs?q=发票")).json()
    assert found and all("发票" in f["question"] + f["answer"] for f in found)
    categories = await (await supervisor.get("/admin/faq-categories")).json()
    assert sum(c["count"] for c in categories) == len(await rows(client, FaqEntry))
    one = categories[0]["category"]
    in_category = await (await supervisor.get(f"/admin/faqs?category={one}")).json()
    assert {f["category"] for f in in_category} == {one}


async def test_export_and_import_roundtrip_csv_xlsx_and_rasa(client: Any, staff: Any) -> None:
    supervisor = await staff("supervisor")
    total = len(await rows(client, FaqEntry))

    csv_resp = await supervisor.get("/admin/faqs/export?format=csv")
    assert csv_resp.status == 200 and "attachment" in csv_resp.headers["Content-Disposition"]
    csv_text = (await csv_resp.read()).decode("utf-8-sig")
    assert csv_text.splitlines()[0] == "id,question,similar_questions,answer,category,enabled"
    assert len(csv_text.strip().splitlines()) >= total + 1

    xlsx = await (await supervisor.get("/admin/faqs/export?format=xlsx")).read()
    sheet = load_workbook(io.BytesIO(xlsx)).active
    assert sheet.max_row == total + 1

    rasa = yaml.safe_load(await (await supervisor.get("/admin/faqs/export?format=rasa")).read())
    faq_intents = [i for i in rasa["nlu"] if str(i.get("intent", "")).startswith("faq/")]
    assert len(faq_intents) == total and len(rasa["responses"]) == total

    # Re-importing what was exported changes nothing.
    same = await supervisor.post("/admin/faqs/import?format=csv", data=csv_text.encode())
    assert (await same.json())["created"] == 0 and (await same.json())["updated"] == 0

    # A CSV with one new and one edited entry (Excel-style BOM) — and one bad row reported, not fatal.
    first = (await rows(client, FaqEntry))[0]
    upload = (
        "\ufeffquestion,answer,category,similar_questions\n"
        "新品什么时候上架？,每周五上新，敬请关注。,商品,新品啥时候上|什么时候出新品\n"
        f"{first.question},改过的答案,{first.category},\n"
        ",缺问题的行,,\n"
    ).encode()
    result = await (await supervisor.post("/admin/faqs/import?format=csv", data=upload)).json()
    assert result["created"] == 1 and result["updated"] == 1 and len(result["errors"]) == 1
    [new] = await rows(client, FaqEntry, FaqEntry.question == "新品什么时候上架？")
    assert new.similar_questions == ["新品啥时候上", "什么时候出新品"]

    # Rasa YAML in: questions, paraphrases and answers.
    rasa_upload = yaml.safe_dump(
        {"nlu": [{"intent": "faq/gift", "examples": "- 可以开礼品卡吗\n- 礼品卡怎么买\n"}],
         "responses": {"utter_faq/gift": [{"text": "礼品卡可在会员中心购买。"}]}},
        allow_unicode=True,
    ).encode()  # fmt: skip
    result = await (await supervisor.post("/admin/faqs/import?format=rasa", data=rasa_upload)).json()
    assert result["created"] == 1
    [gift] = await rows(client, FaqEntry, FaqEntry.question == "可以开礼品卡吗")
    assert gift.answer == "礼品卡可在会员中心购买。" and gift.similar_questions == ["礼品卡怎么买"]
    assert await rows(client, AuditLog, AuditLog.action == "faq.import")


async def test_admin_manages_users_and_a_demoted_user_is_signed_out(client: Any, staff: Any, browsers: Any) -> None:
    admin = await staff("admin")
    resp = await admin.post("/admin/users", {"username": "xiaoli", "password": "long-enough-1", "role": "agent"})
    assert resp.status == 201
    created = await resp.json()
    assert "password_hash" not in created and "password" not in created
    assert (await admin.post("/admin/users", {"username": "xiaoli", "password": "long-enough-1"})).status == 409

    jar = browsers(client)
    await sign_in(jar, "xiaoli", "long-enough-1")
    assert (await jar.get("/api/v1/console/queue")).status == 200
    promoted = await admin.put(f"/admin/users/{created['id']}", {"role": "supervisor", "max_concurrent": 8})
    assert promoted.status == 200 and (await promoted.json())["role"] == "supervisor"
    assert (await jar.get("/api/v1/console/queue")).status == 401  # sessions end when access changes
    assert await rows(client, UserSession, UserSession.user_id == created["id"]) == []

    reset = await admin.put(f"/admin/users/{created['id']}", {"password": "new-password-2"})
    assert reset.status == 200
    old = await jar.post("/api/v1/auth/login", json={"username": "xiaoli", "password": "long-enough-1"})
    assert old.status == 401
    await sign_in(jar, "xiaoli", "new-password-2")

    assert (await admin.put(f"/admin/users/{admin.id}", {"active": False})).status == 422  # not yourself
    mine = await rows(client, AuditLog, AuditLog.object_type == "user", AuditLog.object_id == str(created["id"]))
    actions = [a.action for a in mine]
    assert actions == ["user.create", "user.update", "user.update"]
    [audit] = [a for a in await rows(client, AuditLog, AuditLog.action == "user.update")][:1]
    assert audit.before == {"role": "agent", "max_concurrent": 5}
    assert audit.after == {"role": "supervisor", "max_concurrent": 8}
    [row] = await rows(client, User, User.username == "xiaoli")
    assert row.password_hash.startswith("$argon2") and "new-password-2" not in row.password_hash


async def test_channel_secrets_are_never_shown_in_full(
    settings: Settings, seeded_faq: int, aiohttp_client: Any, browsers: Any
) -> None:
    secret = "wx-app-secret-0123456789abcdef"
    app_client = await aiohttp_client(create_app(settings.model_copy(update={"wechat_app_id": "wx1234567890",
                                                                          "wechat_app_secret": secret})))  # fmt: skip
    admin = await make_user(app_client, "admin")
    await sign_in(app_client, admin.username, PASSWORD)
    resp = await app_client.get("/api/v1/admin/channels")
    text = await resp.text()
    assert resp.status == 200 and secret not in text
    [oa] = [c for c in await resp.json() if c["channel"] == "wechat_oa"]
    fields = {f["key"]: f["value"] for f in oa["fields"]}
    assert fields["wechat_app_id"] == "wx1234567890" and fields["wechat_app_secret"].endswith("cdef")
    assert set(fields["wechat_app_secret"][:-4]) == {"*"}


async def test_audit_log_viewer_filters_and_is_admin_only(client: Any, staff: Any) -> None:
    admin, supervisor = await staff("admin"), await staff("supervisor")
    await supervisor.post("/admin/faqs", {"question": "审计测试问题", "answer": "审计测试答案"})
    entries = await (await admin.get("/admin/audit?action=faq.")).json()
    assert entries and entries[0]["action"] == "faq.create" and entries[0]["actor"] == supervisor.user.username
    assert entries[0]["after"]["question"] == "审计测试问题"
    assert (await supervisor.get("/admin/audit")).status == 403


async def test_dashboard_counts_conversations_handoffs_and_first_response(
    client: Any, staff: Any, visitor: Any
) -> None:
    a, b = await visitor(), await visitor()
    await a.says("运费怎么算")
    await b.says("转人工")
    supervisor = await staff("supervisor")
    d = await (await supervisor.get("/admin/dashboard")).json()
    assert d["conversations"] == 2 and d["messages_in"] == 2 and d["messages_out"] == 2
    assert d["handoff_rate"] == 0.5 and d["bot_resolution_rate"] == 0.5
    assert d["first_response_seconds"] is None  # queued, but no agent has replied yet
    assert sum(p["conversations"] for p in d["series"] if p["channel"] == "webchat") == 2
    assert (await supervisor.get("/admin/dashboard?start=2026-02-01&end=2026-01-01")).status == 422
    empty = await (await supervisor.get("/admin/dashboard?start=2020-01-01&end=2020-01-07")).json()
    assert empty["conversations"] == 0 and empty["handoff_rate"] is None


async def test_dashboard_days_are_china_days(client: Any, staff: Any) -> None:
    from datetime import UTC, datetime

    from models import Conversation, Customer, Direction, Message
    from scrm.db import transaction

    late_evening_utc = datetime(2026, 3, 1, 17, 30, tzinfo=UTC)  # 01:30 on 2 March in Beijing
    async with transaction(client.app[db_key]) as session:
        customer = Customer(name="夜猫子")
        session.add(customer)
        await session.flush()
        conversation = Conversation(customer_id=customer.id, channel="webchat", app_id="web", external_id="night",
                                    created_at=late_evening_utc)  # fmt: skip
        session.add(conversation)
        await session.flush()
        session.add(Message(conversation_id=conversation.id, customer_id=customer.id, channel="webchat",
                            direction=Direction.IN, text="在吗", created_at=late_evening_utc))  # fmt: skip
    supervisor = await staff("supervisor")
    march_2 = await (await supervisor.get("/admin/dashboard?start=2026-03-02&end=2026-03-02")).json()
    assert march_2["conversations"] == 1 and march_2["messages_in"] == 1
    assert [(p["day"], p["conversations"], p["messages"]) for p in march_2["series"]] == [("2026-03-02", 1, 1)]
    march_1 = await (await supervisor.get("/admin/dashboard?start=2026-03-01&end=2026-03-01")).json()
    assert march_1["conversations"] == 0 and march_1["series"] == []
