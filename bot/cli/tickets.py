"""`huike ticket …` (create / import), `huike report complaints`, `huike calendar …`."""

from __future__ import annotations

import asyncio
import csv
import json
import shutil
from datetime import date, datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from bot.cli.core import load_settings

console = Console()
err = Console(stderr=True)


def _group(app: typer.Typer, name: str, help_text: str) -> typer.Typer:
    """A sub-command group, shared if another area already registered it (e.g. `report`)."""
    for info in app.registered_groups:
        if info.name == name and info.typer_instance is not None:
            return info.typer_instance
    group = typer.Typer(help=help_text, no_args_is_help=True)
    app.add_typer(group, name=name)
    return group


def register(app: typer.Typer) -> None:
    ticket = _group(app, "ticket", "Complaint tickets")
    report = _group(app, "report", "Reports")
    calendar = _group(app, "calendar", "Business calendar (holidays, 调休)")

    @ticket.command("create")
    def create(
        customer_id: int = typer.Option(..., "--customer-id", help="Existing customer id"),
        text: str = typer.Option(..., "--text", help="What the customer complained about"),
        order: str = typer.Option(None, "--order", help="Order number"),
        category: str = typer.Option(None, help="Category from the taxonomy (default: predicted)"),
        severity: str = typer.Option(None, help="P1–P4 (default: from the rules)"),
        channel: str = typer.Option("import", help="Where it came in"),
        created_at: datetime = typer.Option(None, "--created-at", help="When it came in (ISO, UTC)"),
        notify: bool = typer.Option(False, help="Tell the customer it was received"),
    ) -> None:
        """Open one ticket (triaged, SLA due times, assigned when an agent is online)."""
        row = {"customer_id": customer_id, "description": text, "order_no": order, "category": category,
               "severity": severity, "channel": channel, "created_at": created_at}  # fmt: skip
        numbers = asyncio.run(_create([row], notify=notify))
        console.print(f"opened {numbers[0]}")

    @ticket.command("import")
    def import_csv(
        path: Path = typer.Argument(
            ...,
            exists=True,
            dir_okay=False,
            help="CSV: customer_id,description[,order_no,category,severity,channel,created_at]",
        ),
    ) -> None:
        """Open many tickets from a CSV file (one transaction per row; bad rows are reported, not fatal)."""
        with path.open(encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.DictReader(handle))
        numbers = asyncio.run(_create(rows, notify=False, keep_going=True))
        console.print(f"opened {sum(1 for n in numbers if n)} of {len(rows)} tickets")

    @report.command("complaints")
    def complaints(
        start: str = typer.Option(..., "--from", help="First day (YYYY-MM-DD, local)"),
        end: str = typer.Option(..., "--to", help="Last day, inclusive"),
        as_json: bool = typer.Option(False, "--json", help="Print JSON"),
    ) -> None:
        """Complaint report: volume, SLA attainment, handling times, reopen rate, CSAT, root causes."""
        try:
            first, last = date.fromisoformat(start), date.fromisoformat(end)
        except ValueError:
            err.print("[red]--from/--to 须为 YYYY-MM-DD[/red]")
            raise typer.Exit(2) from None
        data = asyncio.run(_report(first, last))
        if as_json:
            typer.echo(json.dumps(data, ensure_ascii=False, default=str))
        else:
            _print_report(data)

    @calendar.command("load")
    def load(path: Path = typer.Argument(..., exists=True, dir_okay=False)) -> None:
        """Validate an official holiday schedule (YAML) and install it in the data dir (restart to apply)."""
        from scrm.calendar import CalendarFileError, load_override_file
        from scrm.ticket_config import load_ticket_config

        settings = load_settings()
        try:
            schedules = load_override_file(path)
        except CalendarFileError as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
        target = load_ticket_config(settings.tickets_config).calendar.holiday_file
        if target is None:
            err.print("[red]calendar.holiday_file is not set in the tickets config[/red]")
            raise typer.Exit(2)
        if not target.is_absolute():
            target = settings.data_dir / target
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        years = ", ".join(str(y) for y in sorted(schedules))
        console.print(f"installed {target} for {years}; restart Huike to use it")

    @calendar.command("show")
    def show(year: int = typer.Argument(..., help="Year")) -> None:
        """Holidays and adjusted workdays of a year, and where they come from."""
        from scrm.ticket_config import load_ticket_config

        settings = load_settings()
        cal = load_ticket_config(settings.tickets_config).build_calendar(settings.data_dir)
        console.print(f"{year}: source = {cal.source(year)}")
        for day, name in cal.holidays(year).items():
            console.print(f"  {day} {day:%a} 休 {name}")
        for day in cal.adjusted_workdays(year):
            console.print(f"  {day} {day:%a} 班 (调休)")


async def _create(rows: list[dict[str, Any]], *, notify: bool, keep_going: bool = False) -> list[str | None]:
    from models.ticket import Severity
    from scrm import tickets
    from scrm.audit import Actor
    from scrm.db import make_engine, make_session_factory, transaction
    from scrm.errors import DomainError

    settings = load_settings()
    policy = tickets.TicketPolicy.load(settings.tickets_config, data_dir=settings.data_dir)
    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    numbers: list[str | None] = []
    try:
        for line, row in enumerate(rows, start=2):
            try:
                created = row.get("created_at")
                if isinstance(created, str):
                    created = datetime.fromisoformat(created) if created else None
                async with transaction(sessions) as session:
                    ticket = await tickets.open_ticket(
                        session,
                        policy=policy,
                        customer_id=int(row["customer_id"]),
                        description=str(row.get("description") or ""),
                        actor=Actor.system("cli"),
                        channel=str(row.get("channel") or "import"),
                        order_no=row.get("order_no") or None,
                        category=row.get("category") or None,
                        severity=Severity(row["severity"]) if row.get("severity") else None,
                        notify=notify,
                        created_at=created,
                    )
                numbers.append(ticket.number)
            except (DomainError, ValueError, KeyError) as exc:
                message = getattr(exc, "message", None) or str(exc)
                if not keep_going:
                    err.print(f"[red]{message}[/red]")
                    raise typer.Exit(1) from None
                err.print(f"[yellow]line {line}: {message}[/yellow]")
                numbers.append(None)
    finally:
        await engine.dispose()
    return numbers


async def _report(first: date, last: date) -> dict[str, Any]:
    from scrm import reports
    from scrm.calendar import day_bounds
    from scrm.db import make_engine, make_session_factory
    from scrm.ticket_config import load_ticket_config

    settings = load_settings()
    cal = load_ticket_config(settings.tickets_config).build_calendar(settings.data_dir)
    start, end = day_bounds(first, last, cal.tz)
    engine = make_engine(settings.database_url)
    try:
        async with make_session_factory(engine)() as session:
            result = await reports.complaint_report(session, start=start, end=end, calendar=cal)
    finally:
        await engine.dispose()
    return result.model_dump(mode="json")


def _print_report(data: dict[str, Any]) -> None:
    def pct(value: float | None) -> str:
        return "—" if value is None else f"{value:.0%}"

    def dur(d: dict[str, Any]) -> str:
        return "—" if not d["count"] else f"{d['median_hours']} h / {d['p90_hours']} h (n={d['count']})"

    summary = Table(title=f"投诉报告 {data['start'][:10]} – {data['end'][:10]}", show_header=False)
    summary.add_row("工单数", str(data["total"]))
    summary.add_row("首次响应 SLA 达成", pct(data["first_response_sla_met"]))
    summary.add_row("解决 SLA 达成", pct(data["resolution_sla_met"]))
    summary.add_row("首次响应 中位/P90（工作时）", dur(data["first_response_business_hours"]))
    summary.add_row("解决时长 中位/P90（工作时）", dur(data["resolution_business_hours"]))
    summary.add_row("重开率", pct(data["reopen_rate"]))
    csat = data["csat_average"]
    summary.add_row("满意度 CSAT", "—" if csat is None else f"{csat} / 5（满意 {pct(data['csat_satisfied_rate'])}）")
    summary.add_row("升级", str(data["escalated"]))
    console.print(summary)
    for title, key in (("类别", "by_category"), ("级别", "by_severity"), ("渠道", "by_channel")):
        table = Table(title=title)
        table.add_column(title)
        table.add_column("数量", justify="right")
        for name, count in data[key].items():
            table.add_row(name, str(count))
        console.print(table)
    causes = Table(title="主要归因")
    causes.add_column("归因")
    causes.add_column("数量", justify="right")
    for name, count in data["top_root_causes"]:
        causes.add_row(name, str(count))
    console.print(causes)
