"""What the care-rule editor needs: a template rendered for a sample customer of the audience, and
the guards every care message passes (opt-out, weekly cap, quiet hours) so the page can name them."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import BaseModel, Field
from sqlmodel import col, select

from bot.keys import db_key
from bot.web.api import SUPERVISOR, ApiRouter
from models import Customer, User, utcnow
from models.scrm import Segment
from scrm import care
from scrm.defaults import scrm_config
from scrm.privacy import mask_name, mask_text
from scrm.rules import base_filter, sample_matching

router = ApiRouter("scrm")


class RenderBody(BaseModel):
    template: str = Field(min_length=1, max_length=2000)
    segment_id: int | None = None
    conditions: dict[str, Any] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)


def _audience(body: RenderBody, segment: Segment | None) -> dict[str, Any]:
    parts = [c for c in (segment.conditions if segment else None, body.conditions) if c]
    return {"all": parts} if parts else {}


@router.post("/care-rules:render", roles=SUPERVISOR, body=RenderBody)
async def render_template(request: web.Request, user: User, body: RenderBody) -> dict[str, Any]:
    """The template as the first customer of the audience would get it (sample values when nobody matches)."""
    config = scrm_config()
    async with request.app[db_key]() as session:
        segment = await session.get(Segment, body.segment_id) if body.segment_id else None
        audience = _audience(body, segment)
        if audience:
            sample = await sample_matching(session, audience, limit=1)
        else:  # no audience conditions: any customer
            sample = list(
                (await session.exec(select(Customer).where(base_filter()).order_by(col(Customer.id)).limit(1))).all()
            )
    customer: Customer | None = sample[0] if sample else None
    festivals = body.params.get("festivals") or ["春节"]
    today = utcnow().astimezone(ZoneInfo(config.timezone)).date()
    values = dict(care.SAMPLE_VARS)
    if customer is not None:
        values.update(name=customer.name or care.DEFAULT_NAME, level=customer.member_level or "会员",
                      points=customer.points, stage=customer.lifecycle_stage)  # fmt: skip
    values.update(festival=festivals[0], date=today.isoformat(), days=body.params.get("days", values["days"]))
    text = care.render(body.template, values)
    full = user.role != "agent"
    quiet = config.care.quiet_hours
    return {
        "text": text if full else mask_text(text),
        "customer": None
        if customer is None
        else {"id": customer.id, "name": (customer.name or "") if full else mask_name(customer.name)},
        "guards": {
            "weekly_cap": config.care.weekly_cap,
            "quiet_hours": [quiet.start.strftime("%H:%M"), quiet.end.strftime("%H:%M")],
            "wechat_window_hours": config.care.wechat_window_hours,
        },
    }


def setup(app: web.Application) -> None:
    router.install(app)
