"""Repeat purchase and churn: BG/NBD + Gamma-Gamma scores per customer, and their evaluation.

A transaction is a purchase day: several orders of one customer on one day count once (as in
FHL 2005). Times are in weeks. `score` is what the nightly job stores; `evaluate` fits on the
purchases up to a calibration end and compares with what happened in the holdout, next to a
plain recency/frequency baseline (the RFM quintiles Huike's tiers use).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scrm.insight.btyd import BgNbd, GammaGamma, fit_bgnbd, fit_gamma_gamma

HIGH, MEDIUM, LOW = "高", "中", "低"
HORIZON_DAYS = 90


@dataclass(frozen=True, slots=True)
class Purchase:
    customer: str
    day: date
    amount: float


@dataclass(slots=True)
class Summary:
    """Calibration statistics per customer, aligned arrays (weeks)."""

    customers: list[str]
    x: NDArray[np.float64]  # repeat purchase days
    t_x: NDArray[np.float64]  # first -> last purchase
    T: NDArray[np.float64]  # first purchase -> end of calibration
    m_x: NDArray[np.float64]  # mean value of the repeat purchase days (0 without any)


def summarise(purchases: Iterable[Purchase], end: date) -> Summary:
    """Per customer: purchase days up to `end` (inclusive) folded into (x, t_x, T, m_x)."""
    days: dict[str, dict[date, float]] = {}
    for p in purchases:
        if p.day <= end:
            per_day = days.setdefault(p.customer, {})
            per_day[p.day] = per_day.get(p.day, 0.0) + p.amount
    customers = sorted(days)
    n = len(customers)
    x, t_x, T, m_x = (np.zeros(n) for _ in range(4))
    for i, c in enumerate(customers):
        ordered = sorted(days[c].items())
        first, last = ordered[0][0], ordered[-1][0]
        x[i] = len(ordered) - 1
        t_x[i] = (last - first).days / 7
        T[i] = (end - first).days / 7
        m_x[i] = float(np.mean([v for _, v in ordered[1:]])) if len(ordered) > 1 else 0.0
    return Summary(customers, x, t_x, T, m_x)


def bgnbd_features(m: BgNbd, s: Summary, weeks: float) -> NDArray[np.float64]:
    """RFM and the BG/NBD's view of it, log-scaled: what the repeat classifier reads."""
    alive = m.p_alive(s.x, s.t_x, s.T)
    p_buy = alive * (1 - ((m.alpha + s.T) / (m.alpha + s.T + weeks)) ** (m.r + s.x))
    expected = m.expected_purchases(weeks, s.x, s.t_x, s.T)
    return np.log1p(np.column_stack([s.x, s.T - s.t_x, s.T, s.m_x, p_buy, expected]))


@dataclass(frozen=True, slots=True)
class Model:
    bgnbd: BgNbd
    gamma_gamma: GammaGamma
    classifier: Any  # LogisticRegression on bgnbd_features, or None without a training window
    weeks: float


def fit(now: Summary, past: Summary | None = None, past_bought: NDArray[np.bool_] | None = None,
        weeks: float = HORIZON_DAYS / 7) -> Model:
    """BG/NBD + Gamma-Gamma on `now`; the classifier learns "bought in the next `weeks`" from `past`
    (the same customers summarised `weeks` earlier) and what they did since — a time split, no leakage."""
    classifier = None
    if past is not None and past_bought is not None and 0 < past_bought.sum() < len(past_bought):
        from sklearn.linear_model import LogisticRegression

        inner = fit_bgnbd(past.x, past.t_x, past.T)
        classifier = LogisticRegression(max_iter=1000).fit(bgnbd_features(inner, past, weeks), past_bought)
    bgnbd = fit_bgnbd(now.x, now.t_x, now.T)
    return Model(bgnbd, fit_gamma_gamma(now.x, now.m_x), classifier, weeks)


@dataclass(slots=True)
class Scores:
    p_alive: NDArray[np.float64]
    p_repeat: NDArray[np.float64]  # P(buys again within the horizon)
    expected_orders: NDArray[np.float64]
    expected_spend: NDArray[np.float64]
    risk: list[str]


def churn_risk(p_repeat: NDArray[np.float64], high_below: float = 0.15, low_from: float = 0.5) -> list[str]:
    return [HIGH if p < high_below else LOW if p >= low_from else MEDIUM for p in p_repeat]


def score(model: Model, s: Summary) -> Scores:
    m = model.bgnbd
    alive = m.p_alive(s.x, s.t_x, s.T)
    orders = m.expected_purchases(model.weeks, s.x, s.t_x, s.T)
    if model.classifier is not None:
        p_repeat = model.classifier.predict_proba(bgnbd_features(m, s, model.weeks))[:, 1]
    else:
        p_repeat = alive * (1 - ((m.alpha + s.T) / (m.alpha + s.T + model.weeks)) ** (m.r + s.x))
    spend = orders * model.gamma_gamma.expected_value(s.x, s.m_x)
    return Scores(alive, np.asarray(p_repeat, dtype=np.float64), orders, spend, churn_risk(p_repeat))


# -- evaluation --------------------------------------------------------------------------------


def read_transactions(path: Path) -> Iterator[Purchase]:
    """CDNOW's whitespace format (id yyyymmdd units dollars, one header line) or Huike's order CSV
    (header with customer_id or phone, ordered_at, amount and optionally status: only paid orders count)."""
    with path.open(encoding="utf-8-sig") as f:
        head = f.readline()
        if "ordered_at" in head:
            f.seek(0)
            for row in csv.DictReader(f):
                if (row.get("status") or "paid").strip() != "paid":
                    continue
                who = (row.get("customer_id") or row.get("phone") or "").strip()
                when = datetime.fromisoformat(row["ordered_at"].strip().replace("Z", "+00:00"))
                yield Purchase(who, when.date(), float(row.get("amount") or 0))
            return
        if head.split() and head.split()[0].isdigit():  # no header line after all
            f.seek(0)
        for line in f:
            parts = line.split()
            if len(parts) >= 4:
                yield Purchase(parts[0], datetime.strptime(parts[1], "%Y%m%d").date(), float(parts[3]))


def _auc(labels: NDArray[np.bool_], score: NDArray[np.float64]) -> float:
    from sklearn.metrics import roc_auc_score

    if labels.all() or not labels.any():
        return float("nan")
    return float(roc_auc_score(labels, score))


def _quintile(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """1..5 by rank, ties share the lowest rank (as scrm.value's SQL)."""
    from scipy.stats import rankdata

    rank = rankdata(values, method="min")
    return np.asarray(1 + (5 * (rank - 1)) // len(values), dtype=np.float64)


def evaluate(purchases: list[Purchase], calibration_end: date, holdout_end: date | None = None) -> dict[str, object]:
    """Fit up to `calibration_end`, predict (calibration_end, holdout_end]; the figures of issue 20."""
    last_day = max(p.day for p in purchases)
    holdout_end = holdout_end or last_day
    if not min(p.day for p in purchases) <= calibration_end < holdout_end:
        raise ValueError("校准截止日必须落在数据的日期范围内，且早于留出期截止日")
    cal = summarise(purchases, calibration_end)
    index = {c: i for i, c in enumerate(cal.customers)}
    holdout_days: set[tuple[int, date]] = {
        (index[p.customer], p.day) for p in purchases
        if calibration_end < p.day <= holdout_end and p.customer in index
    }  # fmt: skip
    actual = np.zeros(len(cal.customers))
    for i, _ in holdout_days:
        actual[i] += 1
    days = (holdout_end - calibration_end).days
    weeks = days / 7
    # the classifier's training window: as long as the holdout, at most half of the history before it
    inner_days = min(days, (calibration_end - min(p.day for p in purchases)).days // 2)
    inner_end = calibration_end - timedelta(days=inner_days)
    past = summarise(purchases, inner_end)
    since = {p.customer for p in purchases if inner_end < p.day <= calibration_end}
    past_bought = np.array([c in since for c in past.customers])
    model = fit(cal, past if inner_days > 0 else None, past_bought, weeks)
    predicted = model.bgnbd.expected_purchases(weeks, cal.x, cal.t_x, cal.T)
    scores = score(model, cal)
    bought = actual > 0
    # baseline: RFM's R + F quintiles to rank, each customer's past weekly rate to count
    recency = -(cal.T - cal.t_x)
    baseline_score = _quintile(recency) + _quintile(cal.x)
    baseline_repeat = float((cal.x / np.maximum(cal.T, 1 / 7) * weeks).sum())
    actual_total, predicted_total = float(actual.sum()), float(predicted.sum())
    return {
        "customers": len(cal.customers),
        "calibration_end": calibration_end.isoformat(),
        "holdout_end": holdout_end.isoformat(),
        "holdout_weeks": round(weeks, 2),
        "auc": round(_auc(bought, scores.p_repeat), 4),
        "bgnbd_auc": round(_auc(bought, predicted), 4),
        "baseline_auc": round(_auc(bought, baseline_score), 4),
        "predicted_repeat": round(predicted_total, 1),
        "actual_repeat": int(actual_total),
        "repeat_error_pct": round(100 * (predicted_total - actual_total) / max(actual_total, 1), 2),
        "baseline_repeat": round(baseline_repeat, 1),
        "baseline_error_pct": round(100 * (baseline_repeat - actual_total) / max(actual_total, 1), 2),
        "bgnbd": {"r": model.bgnbd.r, "alpha": model.bgnbd.alpha, "a": model.bgnbd.a, "b": model.bgnbd.b},
    }

