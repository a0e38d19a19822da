"""Customer insight over HTTP: a customer's scores and 推荐商品, the dashboard report, the run on demand,
and the nightly job. Fitting runs in a child process (`huike insight run`), so a worker's memory stays
small and its event loop free while a million customers are scored."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog
from aiohttp import web
from pydantic import AwareDatetime, BaseModel
from sqlmodel import col, select

from bot.keys import db_key, scheduler_key, settings_key
from bot.web.api import ADMIN, STAFF, SUPERVISOR, ApiRouter, path_id
from bot.web.scrm import actor_of
from bot.web.tickets import ticket_policy_key
from models import Customer, User, utcnow
from models.insight import ComplaintAlert, CustomerInsight, Persona, ProductRule
from scrm.audit import record_audit
from scrm.db import transaction
from scrm.errors import NotFound
from scrm.insight.alerts import scan
from scrm.insight.recommend import customer_insight

log = structlog.get_logger(__name__)
router = ApiRouter("insight")
CHILD_TIMEOUT = 4 * 3600.0
SPIKE_EVERY_MINUTES = 10


@router.get("/customers/{customer_id}/insight", roles=STAFF)
async def get_customer_insight(request: web.Request, user: User) -> dict[str, Any]:
    """流失风险、预期价值、画像和推荐商品（the best rules for what the customer bought, minus what they have）."""
    customer_id = path_id(request, "customer_id")
    async with request.app[db_key]() as session:
        if await session.get(Customer, customer_id) is None:
            raise NotFound(f"客户 {customer_id} 不存在")
        found = await customer_insight(session, customer_id)
    return found or {"recommendations": []}


@router.get("/reports/insight", roles=SUPERVISOR)
async def insight_report(request: web.Request, user: User) -> dict[str, Any]:
    """Churn risk counts, persona sizes and traits, the strongest product rules."""
    async with request.app[db_key]() as session:
        risk = (await session.execute(
            sa.select(col(CustomerInsight.churn_risk), sa.func.count(), sa.func.sum(CustomerInsight.expected_spend_90d))
            .where(col(CustomerInsight.churn_risk).is_not(None)).group_by(col(CustomerInsight.churn_risk))
        )).all()  # fmt: skip
        personas = (await session.exec(select(Persona).order_by(col(Persona.size).desc()))).all()
        rules = (await session.exec(select(ProductRule).order_by(col(ProductRule.confidence).desc()).limit(10))).all()
    return {
        "churn_risk": [{"label": r, "count": int(n), "expected_spend_90d": round(float(v or 0), 2)}
                       for r, n, v in risk],
        "personas": [{"name": p.name, "size": p.size, "traits": p.traits, "updated_at": p.updated_at.isoformat()}
                     for p in personas],
        "rules": [{"antecedent": r.antecedent, "consequent": r.consequent, "confidence": round(r.confidence, 3),
                   "lift": round(r.lift, 2)} for r in rules],
    }  # fmt: skip


async def run_child(database_url: str, now: datetime) -> dict[str, Any]:
    """`huike insight run` in a child process; its last output line is the JSON result."""
    env = {**os.environ, "HUIKE_DATABASE_URL": database_url, "HUIKE_LOG_LEVEL": "WARNING"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from bot.cli import main; main()", "insight", "run", "--now", now.isoformat(), "--json",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), CHILD_TIMEOUT)
    except (TimeoutError, asyncio.CancelledError):
        proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"insight run failed ({proc.returncode}): {err.decode(errors='replace')[-2000:]}")
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


@router.get("/insight/alerts", roles=SUPERVISOR)
async def complaint_alerts(request: web.Request, user: User) -> list[dict[str, Any]]:
    """投诉异常预警 of the last 7 days, newest first, with the tickets behind each."""
    since = request.app[ticket_policy_key].now() - timedelta(days=7)
    async with request.app[db_key]() as session:
        rows = (await session.exec(select(ComplaintAlert).where(col(ComplaintAlert.hour_start) >= since)
                                   .order_by(col(ComplaintAlert.hour_start).desc()).limit(50))).all()  # fmt: skip
    return [r.model_dump(mode="json") for r in rows]


async def spike_job(app: web.Application) -> None:
    """Every few minutes: the running hour of every complaint category and channel against its baseline."""
    try:
        async with transaction(app[db_key]) as session:
            policy = app[ticket_policy_key]
            alerts = await scan(session, now=policy.now(), calendar=policy.calendar)
    except Exception:
        log.exception("insight.spike_scan_failed")
        return
    for a in alerts:
        log.warning("insight.complaint_spike", category=a.category, channel=a.channel, count=a.count,
                    expected=a.expected, tickets=a.ticket_ids[:20])  # fmt: skip


class RunBody(BaseModel):
    now: AwareDatetime | None = None  # evaluate as of this moment (default: now)


@router.post("/insight/run", roles=ADMIN, body=RunBody)
async def run_now(request: web.Request, user: User, body: RunBody) -> dict[str, Any]:
    """Run churn scoring, personas and product rules now (what the nightly job does)."""
    result = await run_child(request.app[settings_key].database_url, body.now or utcnow())
    async with transaction(request.app[db_key]) as session:
        record_audit(session, actor=actor_of(user), action="insight.run",
                     object_type="insight", after={k: result[k] for k in ("customers", "scored", "rules")})  # fmt: skip
    return result


async def nightly_job(app: web.Application) -> None:
    try:
        result = await run_child(app[settings_key].database_url, utcnow())
    except Exception:  # logged and retried the next night; never kills the scheduler
        log.exception("insight.nightly_failed")
        return
    log.info("insight.nightly", customers=result["customers"], seconds=result["seconds"])


def setup(app: web.Application) -> None:
    router.install(app)
    app[scheduler_key].add_job(spike_job, "interval", minutes=SPIKE_EVERY_MINUTES, kwargs={"app": app},
                               id="insight-spikes", coalesce=True, max_instances=1)  # fmt: skip
    app[scheduler_key].add_job(nightly_job, "cron", hour=3, minute=10, kwargs={"app": app}, id="insight-nightly",
                               coalesce=True, max_instances=1)  # fmt: skip
