"""`huike import orders|customers FILE`, `huike care preview|run`, `huike privacy export|erase`, `huike scrm …`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from bot.cli.core import load_settings

console = Console()
err = Console(stderr=True)
T = TypeVar("T")
CLI = "cli"


def _group(app: typer.Typer, name: str, help_text: str) -> typer.Typer:
    """A sub-command group, shared if another area already registered it."""
    for info in app.registered_groups:
        if info.name == name and info.typer_instance is not None:
            return info.typer_instance
    group = typer.Typer(help=help_text, no_args_is_help=True)
    app.add_typer(group, name=name)
    return group


def _with_db(work: Callable[[Any], Awaitable[T]]) -> T:
    """Run `work(session_factory)` against the configured database; domain errors are one red line."""
    from scrm.db import make_engine, make_session_factory
    from scrm.errors import DomainError

    settings = load_settings()

    async def run() -> T:
        engine = make_engine(settings.database_url)
        try:
            return await work(make_session_factory(engine))
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except DomainError as exc:
        err.print(f"[red]{exc.message}[/red]")
        errors = getattr(exc, "errors", None)
        for e in errors or []:
            err.print(f"  line {e.row} {e.field}: {e.message}")
        raise typer.Exit(1) from None


def _format(path: Path, fmt: str | None) -> str:
    return fmt or ("json" if path.suffix.lower() == ".json" else "csv")


def register(app: typer.Typer) -> None:
    imp = _group(app, "import", "Import orders and customers (CSV or JSON; idempotent, all or nothing)")
    care_cli = _group(app, "care", "Member care rules: preview and on-demand runs")
    priv = _group(app, "privacy", "Export or erase one customer's personal data (audited)")
    scrm_cli = _group(app, "scrm", "SCRM maintenance: recompute value/lifecycle, run tag rules, seed defaults")

    file_arg = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="CSV (header line) or JSON")
    fmt_opt = typer.Option(None, "--format", help="csv or json (default: from the file extension)")

    @imp.command("orders")
    def import_orders(path: Path = file_arg, fmt: str = fmt_opt) -> None:
        """Orders keyed by order_no: order_no, customer_id or phone, amount, ordered_at, status, items."""
        from scrm.audit import Actor
        from scrm.db import transaction
        from scrm.importing import import_orders as do_import
        from scrm.importing import parse_rows

        rows = parse_rows(path.read_bytes(), _format(path, fmt))

        async def work(factory: Any) -> dict[str, int]:
            async with transaction(factory) as session:
                return (await do_import(session, rows, actor=Actor.system(CLI), source="import")).as_dict()

        console.print(f"orders: {_with_db(work)}")

    @imp.command("customers")
    def import_customers(path: Path = file_arg, fmt: str = fmt_opt) -> None:
        """Customers keyed by id or phone: name, phone, gender, birthday, birthday_calendar, region, points, attr.*."""
        from scrm.audit import Actor
        from scrm.db import transaction
        from scrm.importing import import_customers as do_import
        from scrm.importing import parse_rows

        rows = parse_rows(path.read_bytes(), _format(path, fmt))

        async def work(factory: Any) -> dict[str, int]:
            async with transaction(factory) as session:
                return (await do_import(session, rows, actor=Actor.system(CLI))).as_dict()

        console.print(f"customers: {_with_db(work)}")

    @care_cli.command("preview")
    def care_preview(
        rule: str = typer.Argument(..., help="Rule id or name"),
        day: str = typer.Option(None, "--date", help="YYYY-MM-DD (default today)"),
        limit: int = typer.Option(20, help="Rows to show"),
    ) -> None:
        """Who would get what, without sending or writing anything."""
        from scrm import care

        when = date.fromisoformat(day) if day else None

        async def work(factory: Any) -> tuple[int, list[care.PreviewRow]]:
            async with factory() as session:
                found = await care.get_rule(session, rule)
                return await care.preview(session, found, day=when, limit=limit)

        total, rows = _with_db(work)
        table = Table(title=f"{rule}: {total} customer(s) not yet in the ledger")
        for column in ("customer", "period", "outcome", "channel", "via", "send at", "text"):
            table.add_column(column)
        for r in rows:
            send_at = r.send_at.isoformat(timespec="minutes") if r.send_at else ""
            table.add_row(str(r.customer_id), r.period, r.outcome, r.channel or "", r.via or "", send_at, r.text)
        Console(width=max(console.width, 160)).print(table)  # whole message texts, even in a narrow terminal

    @care_cli.command("run")
    def care_run(
        rule: str = typer.Option(..., "--rule", help="Rule id or name"),
        day: str = typer.Option(None, "--date", help="YYYY-MM-DD (default today)"),
    ) -> None:
        """Run one evaluation now: claim ledger rows, then hand messages to the outbox."""
        from scrm import care

        when = date.fromisoformat(day) if day else None
        result = _with_db(lambda factory: care.run_rule(factory, rule, day=when))
        console.print(f"{result.rule} {result.period_day}: claimed {result.claimed}, {result.outcomes}")

    @priv.command("export")
    def privacy_export(
        customer: int = typer.Argument(..., help="Customer id"),
        out: Path = typer.Option(None, "--out", help="Write JSON here (default: stdout)"),
    ) -> None:
        """Everything stored about one customer, as JSON (audited)."""
        from scrm.audit import Actor
        from scrm.db import transaction
        from scrm.privacy import export_customer

        async def work(factory: Any) -> dict[str, Any]:
            async with transaction(factory) as session:
                return await export_customer(session, customer_id=customer, actor=Actor.system(CLI))

        text = json.dumps(_with_db(work), ensure_ascii=False, indent=2, default=str)
        if out:
            out.write_text(text, encoding="utf-8")
            console.print(f"exported customer {customer} to {out}")
        else:
            typer.echo(text)

    @priv.command("erase")
    def privacy_erase(
        customer: int = typer.Argument(..., help="Customer id"),
        yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation"),
    ) -> None:
        """Erase a customer's personal data, keeping anonymous statistics (audited; cannot be undone)."""
        from scrm.audit import Actor
        from scrm.db import transaction
        from scrm.privacy import erase_customer

        if not yes:
            typer.confirm(f"Erase personal data of customer {customer}? This cannot be undone", abort=True)

        async def work(factory: Any) -> dict[str, int]:
            async with transaction(factory) as session:
                return await erase_customer(session, customer_id=customer, actor=Actor.system(CLI))

        console.print(f"erased customer {customer}: {_with_db(work)}")

    @scrm_cli.command("recompute")
    def recompute() -> None:
        """RFM quintiles, value tiers, member levels, lifecycle stages, then every tag rule."""
        from scrm import tags, value
        from scrm.db import transaction

        async def work(factory: Any) -> str:
            async with transaction(factory) as session:
                result = await value.recompute_all(session)
                rules = await tags.run_tag_rules(session)
            return f"{result} tag rules: {[(r.rule, r.matching) for r in rules]}"

        console.print(_with_db(work))

    @scrm_cli.command("seed")
    def seed() -> None:
        """Create the default tag and care rules from config/scrm.yml that do not exist yet."""
        from scrm import care, tags
        from scrm.db import transaction
        from scrm.defaults import scrm_config

        async def work(factory: Any) -> tuple[int, int]:
            cfg = scrm_config()
            async with transaction(factory) as session:
                return await tags.seed_tag_rules(session, cfg.tag_rules), await care.seed_care_rules(
                    session, cfg.care_rules
                )

        tag_rules, care_rules = _with_db(work)
        console.print(f"seeded {tag_rules} tag rule(s), {care_rules} care rule(s)")
