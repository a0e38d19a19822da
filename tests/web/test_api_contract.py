"""What schemathesis (tests/fuzz/test_openapi_schemathesis.py) found, pinned as plain tests.

The API answers what its OpenAPI document says: documented status codes, ids that are not ids are a 404,
numbers the database cannot hold are a 422 (not a database error), times carry their UTC offset.
"""

from __future__ import annotations

import io
from typing import Any

from openpyxl import load_workbook

from bot.keys import db_key
from bot.web.api import openapi_document, operations_key
from models import FaqConfirmation
from models.scrm import CareKind, CareRule, Segment
from scrm.db import transaction
from tests.conftest import login_as


async def openapi(client: Any) -> dict[str, Any]:
    """The document `/api/v1/openapi.json` serves (to signed-in staff only)."""
    return openapi_document(client.app[operations_key])


async def test_webchat_documents_201_for_a_new_message_and_200_for_a_resent_one(client: Any) -> None:
    responses = (await openapi(client))["paths"]["/api/v1/webchat/messages"]["post"]["responses"]
    assert {"200", "201", "4XX"} <= set(responses)
    body = {"text": "你好", "client_msg_id": "c-1"}
    assert (await client.post("/api/v1/webchat/messages", json=body)).status == 201
    assert (await client.post("/api/v1/webchat/messages", json=body)).status == 200


async def test_operations_that_answer_nothing_document_204(client: Any) -> None:
    paths = (await openapi(client))["paths"]
    for path, method in [("/api/v1/auth/logout", "post"), ("/api/v1/auth/password", "post"),
                         ("/api/v1/admin/faqs/{faq_id}", "delete"), ("/api/v1/console/canned/{canned_id}", "delete"),
                         ("/api/v1/segments/{segment_id}", "delete"),
                         ("/api/v1/customers/{customer_id}/tags/{tag}", "delete")]:  # fmt: skip
        responses = paths[path][method]["responses"]
        assert "204" in responses and "content" not in responses["204"], (path, method)
    headers = await login_as(client, "admin")
    assert (await client.post("/api/v1/auth/logout", json={}, headers=headers)).status == 204


async def test_path_ids_are_documented_as_integers_and_anything_else_is_a_404(client: Any) -> None:
    param = (await openapi(client))["paths"]["/api/v1/tickets/{ticket_id}"]["get"]["parameters"][0]
    assert param["schema"] == {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
    await login_as(client, "admin")
    for raw in ["²", "%C2%B2", "0", "2147483648", "9" * 5000, "1_0", "%201"]:
        for path in [f"/api/v1/tickets/{raw}", f"/api/v1/customers/{raw}", f"/api/v1/admin/faqs/{raw}",
                     f"/api/v1/console/conversations/{raw}", f"/api/v1/segments/{raw}/export"]:  # fmt: skip
            resp = await client.get(path)
            assert resp.status == 404, (path, resp.status, await resp.text())
            assert (await resp.json())["code"] == "not_found"


async def test_numbers_beyond_an_integer_column_are_refused_with_422(client: Any) -> None:
    headers = await login_as(client, "admin")
    for path in ["/api/v1/customers?offset=6622809966421948235776", "/api/v1/tickets?assignee_id=4294967296",
                 "/api/v1/customers/1/timeline?limit=abc", "/api/v1/care-rules/1/deliveries?limit=-1"]:  # fmt: skip
        resp = await client.get(path)
        assert resp.status == 422, (path, resp.status, await resp.text())
    resp = await client.post("/api/v1/console/conversations/1/transfer", json={"agent_id": 2**40}, headers=headers)
    assert resp.status == 422 and (await resp.json())["code"] == "unprocessable_entity"
    assert (await client.get("/api/v1/customers?offset=2147483647")).status == 200  # the largest one is fine


async def test_export_of_a_customer_with_conversations_is_json(client: Any) -> None:
    posted = await client.post("/api/v1/webchat/messages", json={"text": "多久发货？", "client_msg_id": "e"})
    assert posted.status == 201
    await login_as(client, "admin")
    resp = await client.get("/api/v1/customers/1/export")
    assert resp.status == 200, await resp.text()
    export = await resp.json()
    assert export["customer"]["id"] == 1 and export["conversation"] and export["message"]


async def test_times_carry_their_utc_offset_on_every_database(client: Any) -> None:
    await login_as(client, "admin")
    users = await (await client.get("/api/v1/admin/users")).json()
    assert users and all(u["created_at"].endswith("Z") for u in users)


async def test_an_faq_agents_labelled_questions_with_is_kept_409_and_can_be_disabled(client: Any) -> None:
    headers = await login_as(client, "supervisor")
    async with transaction(client.app[db_key]) as session:
        session.add(FaqConfirmation(text="几天能到", faq_id=1))
    resp = await client.delete("/api/v1/admin/faqs/1", headers=headers)
    assert resp.status == 409 and (await resp.json())["code"] == "conflict"  # was a foreign-key 500
    assert (await client.get("/api/v1/admin/faqs/1")).status == 200
    assert (await client.delete("/api/v1/admin/faqs/2", headers=headers)).status == 204


async def test_a_segment_a_care_rule_uses_is_kept_409(client: Any) -> None:
    headers = await login_as(client, "admin")
    async with transaction(client.app[db_key]) as session:
        segment = Segment(name="高价值", conditions={})
        session.add(segment)
        await session.flush()
        session.add(CareRule(name="回访", kind=CareKind.INACTIVITY, template="好久不见", segment_id=segment.id))
    resp = await client.delete(f"/api/v1/segments/{segment.id}", headers=headers)
    assert resp.status == 409 and (await resp.json())["code"] == "conflict"  # was a foreign-key 500
    for ref in ["²", "99999999999"]:  # segment by id or name: neither is a 500
        assert (await client.get("/api/v1/customers", params={"segment": ref})).status == 404


async def test_faq_export_to_xlsx_drops_control_characters_a_worksheet_cannot_hold(client: Any) -> None:
    headers = await login_as(client, "supervisor")
    body = {"question": "发票\x01怎么开", "answer": "在订单页\x1b申请"}
    assert (await client.post("/api/v1/admin/faqs", json=body, headers=headers)).status == 201
    resp = await client.get("/api/v1/admin/faqs/export?format=xlsx")
    assert resp.status == 200, await resp.text()  # was openpyxl's IllegalCharacterError: 500
    sheet = load_workbook(io.BytesIO(await resp.read())).active
    assert sheet is not None and "发票怎么开" in [row[1] for row in sheet.iter_rows(values_only=True)]


async def test_null_fields_in_an_faq_update_leave_them_unchanged(client: Any) -> None:
    headers = await login_as(client, "supervisor")
    before = await (await client.get("/api/v1/admin/faqs/1")).json()
    body = {"question": "新的问法", "answer": None, "category": None}
    resp = await client.put("/api/v1/admin/faqs/1", json=body, headers=headers)
    assert resp.status == 200, await resp.text()  # was a 500: answer set to None
    after = await resp.json()
    assert after["question"] == "新的问法"
    assert (after["answer"], after["category"]) == (before["answer"], before["category"])


async def test_customer_points_cannot_be_nulled_but_optional_fields_can(client: Any) -> None:
    posted = await client.post("/api/v1/webchat/messages", json={"text": "你好", "client_msg_id": "p"})
    assert posted.status == 201
    headers = await login_as(client, "supervisor")
    resp = await client.patch("/api/v1/customers/1", json={"points": None}, headers=headers)
    assert resp.status == 422  # was a NOT NULL 500
    resp = await client.patch("/api/v1/customers/1", json={"points": 30, "region": "杭州"}, headers=headers)
    assert resp.status == 200 and (await resp.json())["points"] == 30
    resp = await client.patch("/api/v1/customers/1", json={"region": None}, headers=headers)
    assert resp.status == 200 and (await resp.json())["region"] is None and (await resp.json())["points"] == 30
