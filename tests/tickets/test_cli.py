"""`huike ticket create/import`, `huike report complaints`, `huike calendar load/show` on a real database."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

from sqlmodel import select
from typer.testing import CliRunner

from models import utcnow
from models.ticket import Ticket
from scrm.calendar import local_today
from scrm.db import SessionFactory, transaction
from tests.tickets.conftest import make_customer


def _run(args: list[str], database_url: str, data_dir: Path) -> tuple[int, str]:
    from bot.cli import app

    env = {"HUIKE_DATABASE_URL": database_url, "HUIKE_DATA_DIR": str(data_dir), "HUIKE_LOG_LEVEL": "WARNING"}
    result = CliRunner().invoke(app, args, env=env)
    return result.exit_code, result.output


async def test_create_import_and_report(db: SessionFactory, database_url: str, tmp_path: Path) -> None:
    """Imported tickets are stamped with the (pinned) clock; the report is asked for in Beijing days."""
    now = utcnow()
    today, yesterday = local_today(now), local_today(now - timedelta(days=1))
    async with transaction(db) as s:
        customer = await make_customer(s)
    code, out = await asyncio.to_thread(
        _run,
        ["ticket", "create", "--customer-id", str(customer.id), "--text", "快递三天没更新物流",
         "--order", "DD2026112300001", "--created-at", (now - timedelta(days=1)).isoformat()],
        database_url, tmp_path,
    )  # fmt: skip
    assert code == 0, out
    csv_file = tmp_path / "tickets.csv"
    csv_file.write_text(
        "customer_id,description,category,severity\n"
        f"{customer.id},App 闪退打不开,,\n"
        f"{customer.id},价格不对,价格/优惠,P4\n"
        "999999,没有这个客户,,\n",
        encoding="utf-8",
    )
    code, out = await asyncio.to_thread(_run, ["ticket", "import", str(csv_file)], database_url, tmp_path)
    assert code == 0 and "opened 2 of 3" in out and "line 4" in out, out
    async with db() as s:
        rows = (await s.exec(select(Ticket).order_by(Ticket.id))).all()  # type: ignore[arg-type]
    assert [(t.category, t.severity, t.channel) for t in rows] == [
        ("物流配送", "P3", "import"), ("App/技术故障", "P2", "import"), ("价格/优惠", "P4", "import"),
    ]  # fmt: skip
    assert rows[0].number and rows[0].number.startswith(f"{yesterday:%Y%m%d}-")
    assert "30 天内已投诉" in rows[1].severity_reason  # the same customer again: a repeat complaint

    window = ["--from", yesterday.isoformat(), "--to", today.isoformat()]
    code, out = await asyncio.to_thread(_run, ["report", "complaints", *window, "--json"], database_url, tmp_path)
    assert code == 0, out
    report = json.loads(out.strip().splitlines()[-1])
    assert report["total"] == 3 and report["by_category"]["物流配送"] == 1
    assert report["start"].startswith(yesterday.isoformat()) and report["end"].startswith(f"{today + timedelta(1)}")
    code, out = await asyncio.to_thread(_run, ["report", "complaints", *window], database_url, tmp_path)
    assert code == 0 and f"投诉报告 {yesterday} – " in out, out
    code, out = await asyncio.to_thread(
        _run, ["report", "complaints", "--from", today.isoformat(), "--to", today.isoformat(), "--json"],
        database_url, tmp_path,
    )  # today alone: the two imported tickets, not yesterday's
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["total"] == 2, out


async def test_calendar_load_validates_and_installs(database_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("2027:\n  holidays:\n    春节: [2027-02-12, 2027-02-05]\n", encoding="utf-8")
    code, out = await asyncio.to_thread(_run, ["calendar", "load", str(bad)], database_url, tmp_path)
    assert code == 2 and "plausible" in out
    good = tmp_path / "official-2027.yml"
    good.write_text("2027:\n  holidays:\n    春节: [2027-02-05, 2027-02-12]\n  workdays: [2027-02-20]\n",
                    encoding="utf-8")  # fmt: skip
    code, out = await asyncio.to_thread(_run, ["calendar", "load", str(good)], database_url, tmp_path)
    assert code == 0 and (tmp_path / "holidays.yml").exists(), out
    code, out = await asyncio.to_thread(_run, ["calendar", "show", "2027"], database_url, tmp_path)
    assert code == 0 and "source = override" in out and "2027-02-20" in out
