"""`huike insight …`: customer insight — evaluations on files (pure) and the nightly run on the database."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Customer insight: churn and value, personas, cross-sell", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="insight")


def _report(title: str, figures: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(figures, ensure_ascii=False))
        return
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in figures.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)


def _day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        err.print(f"[red]{option} 需要 YYYY-MM-DD 格式的日期: {text!r}[/red]")
        raise typer.Exit(2) from None


@app.command("eval-churn")
def eval_churn(
    transactions: Path = typer.Option(..., exists=True, dir_okay=False, help="CDNOW-format file or Huike order CSV"),
    calibration_end: str = typer.Option(..., help="last day of the calibration period, YYYY-MM-DD"),
    holdout_end: str | None = typer.Option(None, help="last day of the holdout (default: last date in the file)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object as the last line"),
) -> None:
    """Fit on purchases up to CALIBRATION_END, predict the holdout: AUC of buying again, repeat purchases."""
    from scrm.insight.churn import evaluate, read_transactions

    cal_end = _day(calibration_end, "--calibration-end")
    hold_end = _day(holdout_end, "--holdout-end")
    assert cal_end is not None
    try:
        purchases = list(read_transactions(transactions))
    except (ValueError, KeyError) as exc:
        err.print(f"[red]无法读取交易文件: {exc}[/red]")
        raise typer.Exit(2) from None
    if not purchases:
        err.print("[red]交易文件里没有购买记录[/red]")
        raise typer.Exit(2)
    try:
        figures = evaluate(purchases, cal_end, hold_end)
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    _report("churn / repeat purchase", figures, as_json)


@app.command("eval-rules")
def eval_rules(
    baskets: Path = typer.Option(..., exists=True, dir_okay=False, help="one basket per line, comma-separated"),
    test_fraction: float = typer.Option(0.2, min=0.01, max=0.99, help="share of baskets held out"),
    seed: int = typer.Option(0, help="shuffle seed"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object as the last line"),
) -> None:
    """Leave-one-item-out basket completion: hit@5 of the association rules vs the most popular items."""
    from scrm.insight.crosssell import evaluate, read_baskets

    _report("cross-sell rules", evaluate(read_baskets(baskets), test_fraction=test_fraction, seed=seed), as_json)


@app.command("eval-spikes")
def eval_spikes(
    months: int = typer.Option(6, min=3, max=24, help="months of replayed history (the first 8 weeks warm up)"),
    spikes: int = typer.Option(24, min=1, help="injected bursts"),
    seed: int = typer.Option(0, help="random seed"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object as the last line"),
) -> None:
    """Replay complaint history on the Chinese calendar with injected spikes: detection delay, false alarms."""
    from scrm.insight.spikes import replay

    _report("complaint spikes", replay(months=months, spikes=spikes, seed=seed), as_json)


@app.command("run")
def run(
    now: str | None = typer.Option(None, help="evaluate as of this UTC time (ISO; default: now)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object as the last line"),
) -> None:
    """The nightly insight run on the configured database: scores, personas, rules, spike scan."""
    from bot.cli.scrm import _with_db
    from models import utcnow
    from scrm.insight.nightly import run_insight

    try:
        at = datetime.fromisoformat(now) if now else utcnow()
    except ValueError:
        err.print(f"[red]--now 需要 ISO 时间，如 2027-01-05T02:00:00+00:00: {now!r}[/red]")
        raise typer.Exit(2) from None
    at = at if at.tzinfo else at.replace(tzinfo=UTC)  # a time without offset is UTC
    result = _with_db(lambda factory: run_insight(factory, now=at))
    _report("insight run", result, as_json)
