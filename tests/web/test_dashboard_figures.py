"""Every dashboard figure against a fixture computed by hand (one Beijing day, 2026-03-10).

    A  webchat    bot only: in 10:00:00, bot 10:00:01; closed 10:10:00            (600 s)
    B  webchat    转人工 10:00:00, bot 10:00:01 = queued; agent 10:00:41, 10:01:00; closed 10:20:00 (1,200 s)
                  + an internal note (never counted)
    C  wechat_oa  in 10:00:00, queued 10:00:05; agent 10:02:05; still open
    D  wechat_oa  in 10:00:00; nothing answered yet
    E  webchat    2026-03-12: outside the range

    conversations 4; messages in 4, out 5 (A 1, B 3, C 1); handoff 2/4 = 0.5; bot resolution 1/4 = 0.25
    first response = first agent reply - entry into the queue: (40 + 120) / 2 = 80.0 s
    conversation length (closed ones): (600 + 1,200) / 2 = 900.0 s
    ticket opened 10:00, resolved 12:00: 7,200 s; CSAT 2 and 5: 3.5 (2); NPS 10, 9, 7, 3: (2 - 1) / 4 = 25.0 (4)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bot.keys import db_key
from models import Conversation, Customer, Direction, Message, Sender
from models.ticket import SurveyKind, SurveyResponse, Ticket, TicketStatus
from scrm.db import transaction

T0 = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)  # 10:00 in Beijing


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def seed(client: Any) -> None:
    async with transaction(client.app[db_key]) as session:
        customers = [Customer(name=n) for n in "ABCDE"]
        session.add_all(customers)
        await session.flush()
        a, b, c, d, e = (x.id or 0 for x in customers)

        def conversation(customer: int, channel: str, **fields: Any) -> Conversation:
            return Conversation(customer_id=customer, channel=channel, app_id="web", external_id=f"x{customer}",
                                created_at=fields.pop("created_at", T0), **fields)  # fmt: skip

        convs = [
            conversation(a, "webchat", closed_at=at(600)),
            conversation(b, "webchat", queue_reason="human", queued_at=at(1), assigned_at=at(30), closed_at=at(1200)),
            conversation(c, "wechat_oa", queue_reason="human", queued_at=at(5), assigned_at=at(100)),
            conversation(d, "wechat_oa"),
            conversation(e, "webchat", created_at=T0 + timedelta(days=2)),
        ]
        session.add_all(convs)
        await session.flush()
        ca, cb, cc, cd, ce = convs

        def msg(conv: Conversation, sender: Sender, seconds: float, text: str = "…") -> Message:
            direction = Direction.IN if sender == Sender.CUSTOMER else Direction.OUT
            return Message(conversation_id=conv.id or 0, customer_id=conv.customer_id, channel=conv.channel,
                           direction=direction, sender=sender, text=text, created_at=at(seconds))  # fmt: skip

        session.add_all([
            msg(ca, Sender.CUSTOMER, 0, "运费怎么算"), msg(ca, Sender.BOT, 1),
            msg(cb, Sender.CUSTOMER, 0, "转人工"), msg(cb, Sender.BOT, 1), msg(cb, Sender.AGENT, 41),
            msg(cb, Sender.NOTE, 45, "内部备注"), msg(cb, Sender.AGENT, 60),
            msg(cc, Sender.CUSTOMER, 0), msg(cc, Sender.AGENT, 125),
            msg(cd, Sender.CUSTOMER, 0),
            msg(ce, Sender.CUSTOMER, 2 * 86400), msg(ce, Sender.AGENT, 2 * 86400 + 5),
        ])  # fmt: skip
        ticket = Ticket(customer_id=b, channel="webchat", description="物流慢", number="T-1", category="物流配送",
                        status=TicketStatus.RESOLVED, created_at=T0, resolved_at=at(7200))  # fmt: skip
        session.add(ticket)
        await session.flush()
        session.add_all(
            [SurveyResponse(kind=SurveyKind.CSAT, customer_id=b, ticket_id=ticket.id, score=s, created_at=at(7300))
             for s in (2, 5)]
            + [SurveyResponse(kind=SurveyKind.NPS, customer_id=x, score=s, created_at=at(100))
               for x, s in ((a, 10), (b, 9), (c, 7), (d, 3))]
        )  # fmt: skip


async def test_every_dashboard_figure_matches_the_hand_computed_fixture(client: Any, staff: Any) -> None:
    await seed(client)
    supervisor = await staff("supervisor")
    d = await (await supervisor.get("/admin/dashboard?start=2026-03-10&end=2026-03-10")).json()
    assert d["conversations"] == 4
    assert (d["messages_in"], d["messages_out"]) == (4, 5)
    assert (d["handoff_rate"], d["bot_resolution_rate"]) == (0.5, 0.25)
    assert d["first_response_seconds"] == 80.0
    assert d["resolution_seconds"] == 900.0
    assert d["ticket_resolution_seconds"] == 7200.0
    assert (d["csat"], d["csat_count"]) == (3.5, 2)
    assert (d["nps"], d["nps_count"]) == (25.0, 4)
    assert d["complaints_by_category"] == [{"label": "物流配送", "count": 1}]
    assert sorted((p["day"], p["channel"], p["conversations"], p["messages"]) for p in d["series"]) == [
        ("2026-03-10", "webchat", 2, 2),
        ("2026-03-10", "wechat_oa", 2, 2),
    ]
    assert sum(b["count"] for b in d["customers_by_lifecycle"]) == 5  # every customer, not only this day's
