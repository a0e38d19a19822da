"""未解决问题 (content gaps) and FAQ hygiene through the HTTP API, on the real app."""

from __future__ import annotations

from typing import Any

from models import AuditLog, FaqEntry
from tests.web.conftest import rows

UNANSWERED = ["你们招兼职吗", "你们还招兼职吗", "招兼职吗", "你们招兼职吗"]


async def gap_groups(supervisor: Any, days: int = 7) -> list[dict[str, Any]]:
    resp = await supervisor.get(f"/admin/gaps?days={days}")
    assert resp.status == 200, await resp.text()
    return list((await resp.json())["groups"])


async def test_fallbacks_are_grouped_and_one_click_teaches_the_faq(client: Any, staff: Any, visitor: Any) -> None:
    v = await visitor()
    for text in UNANSWERED:
        await v.says(text)
    await v.says("转人工")  # not a gap: the customer asked for a person
    supervisor = await staff("supervisor")
    [group] = [g for g in await gap_groups(supervisor) if "兼职" in g["leader"]]
    assert group["count"] == len(UNANSWERED) and group["fallback"] + group["clarify"] == len(UNANSWERED)
    assert {e["text"] for e in group["examples"]} == set(UNANSWERED)
    assert dict((e["text"], e["count"]) for e in group["examples"])["你们招兼职吗"] == 2

    target = next(f for f in await rows(client, FaqEntry) if f.question == "客服的服务时间是几点？")
    texts = [e["text"] for e in group["examples"]]
    resp = await supervisor.post("/admin/gaps/assign", {"faq_id": target.id, "texts": texts})
    assert resp.status == 200, await resp.text()
    assert set(texts) <= set((await resp.json())["similar_questions"])
    [audit] = await rows(client, AuditLog, AuditLog.action == "faq.update", AuditLog.actor_id == supervisor.id)
    assert audit.object_id == str(target.id) and audit.after == {"similar_questions": target.similar_questions + texts}
    assert not [g for g in await gap_groups(supervisor) if "兼职" in g["leader"]]  # resolved: off the list


async def test_a_group_becomes_a_disabled_draft_faq(client: Any, staff: Any, visitor: Any) -> None:
    v = await visitor()
    for text in ("能不能开直播带货", "你们能开直播吗"):
        await v.says(text)
    supervisor = await staff("supervisor")
    resp = await supervisor.post("/admin/gaps/draft", {"texts": ["你们能开直播吗", "能不能开直播带货"]})
    assert resp.status == 201, await resp.text()
    draft = await resp.json()
    assert draft["question"] == "你们能开直播吗" and draft["similar_questions"] == ["能不能开直播带货"]
    assert draft["enabled"] is False and draft["answer"]
    [audit] = await rows(client, AuditLog, AuditLog.action == "faq.create", AuditLog.object_id == str(draft["id"]))
    assert audit.actor_id == supervisor.id


async def test_gaps_need_a_supervisor_and_valid_input(client: Any, staff: Any) -> None:
    agent = await staff("agent")
    assert (await agent.get("/admin/gaps")).status == 403
    assert (await agent.post("/admin/gaps/draft", {"texts": ["x"]})).status == 403
    assert (await client.get("/api/v1/admin/gaps")).status == 401
    supervisor = await staff("supervisor")
    assert (await supervisor.get("/admin/gaps?days=0")).status == 422
    assert (await supervisor.get("/admin/gaps?days=abc")).status == 422
    assert (await supervisor.post("/admin/gaps/draft", {"texts": []})).status == 422
    blank = await supervisor.post("/admin/gaps/draft", {"texts": ["  "]})
    assert blank.status == 422 and "不能为空" in (await blank.json())["message"]
    assert (await supervisor.post("/admin/gaps/assign", {"faq_id": 999999, "texts": ["x"]})).status == 404


async def test_saving_a_question_near_an_existing_one_shows_both_answers(client: Any, staff: Any) -> None:
    supervisor = await staff("supervisor")
    seeded = next(f for f in await rows(client, FaqEntry) if f.question == "可以用花呗分期付款吗？")
    resp = await supervisor.post("/admin/faqs/check", {"question": "支持花呗分期付款吗？"})
    assert resp.status == 200
    [near] = [n for n in await resp.json() if n["faq_id"] == seeded.id]
    assert near["answer"] == seeded.answer and near["asked_as"] == "支持花呗分期付款吗？"
    # the entry being edited is not its own near duplicate; an unrelated question has none
    own = await supervisor.post("/admin/faqs/check", {"question": seeded.question, "faq_id": seeded.id})
    assert seeded.id not in [n["faq_id"] for n in await own.json()]
    assert await (await supervisor.post("/admin/faqs/check", {"question": "你们招聘主播吗"})).json() == []


async def test_a_save_with_wait_returns_once_the_new_model_serves(client: Any, staff: Any) -> None:
    supervisor = await staff("supervisor")
    body = {
        "question": "你们支持数字人民币付款吗？",
        "similar_questions": ["可以用数字人民币吗", "数字人民币能不能支付"],
        "answer": "支持的，结算时选择「数字人民币」即可付款。",
        "category": "支付",
    }
    created = await supervisor.post("/admin/faqs?wait=serving", body)
    assert created.status == 201
    tried = await (await supervisor.post("/admin/faqs/try", {"text": "能用数字人民币付钱吗"})).json()
    assert tried["hits"][0]["faq_id"] == (await created.json())["id"]  # no polling: it already serves
