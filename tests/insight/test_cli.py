"""`huike insight eval-churn|eval-rules` on the real CDNOW and Groceries data, and on Huike's order CSV."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app


def _json(args: list[str]) -> dict[str, object]:
    result = CliRunner().invoke(app, args, env={"HUIKE_LOG_LEVEL": "WARNING"})
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.output.strip().splitlines()[-1]))


@pytest.mark.parametrize("calibration_end", ["1997-09-30", "1998-01-31"])
def test_eval_churn_on_cdnow_beats_the_rfm_baseline(datasets: Path, calibration_end: str) -> None:
    figures = _json(["insight", "eval-churn", "--transactions", str(datasets / "dev/retail/cdnow_master.txt"),
                     "--calibration-end", calibration_end, "--json"])  # fmt: skip
    assert figures["customers"] == 23570 and figures["holdout_end"] == "1998-06-30"
    assert float(figures["auc"]) > float(figures["baseline_auc"]) > 0.7  # type: ignore[arg-type]
    error = abs(float(figures["repeat_error_pct"]))  # type: ignore[arg-type]
    assert error < 16 and error < abs(float(figures["baseline_error_pct"]))  # type: ignore[arg-type]


def test_eval_churn_reads_huike_orders_and_refuses_dates_outside_the_data(tmp_path: Path) -> None:
    lines = ["order_no,customer_id,amount,status,ordered_at"]
    for c in range(40):
        for k in range(1 + c % 4):
            lines.append(f"N{c}-{k},{c},{50 + k},paid,2027-0{1 + k}-{1 + c % 28:02d}T10:00:00+08:00")
    lines.append("R1,1,99,refunded,2027-05-01T10:00:00+08:00")
    orders = tmp_path / "orders.csv"
    orders.write_text("\n".join(lines) + "\n", encoding="utf-8")
    figures = _json(["insight", "eval-churn", "--transactions", str(orders), "--calibration-end", "2027-02-15",
                     "--json"])  # fmt: skip
    assert figures["customers"] == 40 and figures["holdout_end"] == "2027-04-28"
    result = CliRunner().invoke(app, ["insight", "eval-churn", "--transactions", str(orders),
                                      "--calibration-end", "2028-01-01", "--json"])  # fmt: skip
    assert result.exit_code == 2 and "校准截止日" in result.output
    result = CliRunner().invoke(app, ["insight", "eval-churn", "--transactions", str(orders),
                                      "--calibration-end", "2027/02/15"])  # fmt: skip
    assert result.exit_code == 2 and "YYYY-MM-DD" in result.output


def test_eval_rules_on_groceries_beats_popular_items(datasets: Path) -> None:
    figures = _json(["insight", "eval-rules", "--baskets", str(datasets / "dev/retail/groceries.csv"), "--json"])
    assert figures["baskets"] == 9835 and int(figures["rules"]) > 100  # type: ignore[call-overload]
    assert float(figures["hit_at_5"]) > float(figures["baseline_hit_at_5"])  # type: ignore[arg-type]
