"""Insight over HTTP: the run on demand (a child process), a customer's scores and 推荐商品, the report."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select

from bot.keys import db_key
from models import AuditLog
from scrm.db import transaction
from scrm.value import recompute_all
from tests.conftest import login_as
from tests.insight.conftest import NOW, shop


async def test_run_report_and_customer_insight(client: Any) -> None:
    db = client.app[db_key]
    groups = await shop(db, loyal=8, lapsed=8, once=8)
    async with transaction(db) as s:
        await recompute_all(s, now=NOW)
    # one cookie jar: each login_as below replaces the session, so roles are checked in turn
    agent = await login_as(client, "agent")
    resp = await client.post("/api/v1/insight/run", json={"now": NOW.isoformat()}, headers=agent)
    assert resp.status == 403
    assert (await client.get("/api/v1/reports/insight", headers=agent)).status == 403
    admin = await login_as(client, "admin")
    resp = await client.post("/api/v1/insight/run", json={"now": "yesterday"}, headers=admin)
    assert resp.status == 422
    resp = await client.post("/api/v1/insight/run", json={"now": NOW.isoformat()}, headers=admin)
    assert resp.status == 200, await resp.text()
    run = await resp.json()
    assert run["customers"] == 24 and run["scored"] == 24 and run["rules"] > 0
    assert set(run["seconds"]) == {"read", "churn", "personas", "write", "rules"}
    async with db() as s:
        assert (await s.exec(select(AuditLog).where(col(AuditLog.action) == "insight.run"))).first() is not None

    agent = await login_as(client, "agent")
    lapsed = groups["lapsed"][0]
    resp = await client.get(f"/api/v1/customers/{lapsed}/insight", headers=agent)
    body = await resp.json()
    assert body["churn_risk"] == "高" and body["persona"]
    assert "茶具" in body["recommendations"] and "保温杯" not in body["recommendations"]
    profile = await (await client.get(f"/api/v1/customers/{lapsed}", headers=agent)).json()
    assert profile["insight"]["churn_risk"] == "高" and profile["customer"]["name"] != "lapsed0"  # masked for agents
    assert (await client.get("/api/v1/customers/999999/insight", headers=agent)).status == 404

    supervisor = await login_as(client, "supervisor")
    report = await (await client.get("/api/v1/reports/insight", headers=supervisor)).json()
    assert sum(p["size"] for p in report["personas"]) == 24
    assert {r["label"] for r in report["churn_risk"]} >= {"高"}
    assert report["rules"] and all(r["confidence"] > 0 for r in report["rules"])
