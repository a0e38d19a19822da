"""Complaint spikes (投诉异常预警): hourly complaint counts per category and channel against a baseline
that knows the hour of day, the weekday/weekend and Chinese public holidays.

The baseline of an hour is a trimmed mean of the same hour (and its neighbours) on the last `WINDOW_DAYS`
days of the same kind (workday / weekend / holiday; holidays borrow weekends while they have too few of
their own). Trimming drops one noisy day, so a bad Monday does not hide Tuesday's spike. An alert fires when the
count so far in the hour passes `expected + K * sqrt(expected + 0.5) + 1` and `MIN_COUNT`; checking the
running hour every few minutes catches a spike before the hour is over.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np

from scrm.calendar import BusinessCalendar

WINDOW_DAYS = 6  # days of the same kind in the baseline
LOOKBACK_DAYS = 56
K = 3.0
MIN_COUNT = 3
BEIJING = timedelta(hours=8)

Series = tuple[str, str]  # (category, channel)


def day_kind(day: date, calendar: BusinessCalendar) -> str:
    if calendar.is_holiday(day):
        return "holiday"
    return "workday" if calendar.is_workday(day) else "weekend"


def hour_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class Check:
    series: Series
    hour: datetime  # UTC start of the hour
    count: int
    expected: float
    threshold: int

    @property
    def alert(self) -> bool:
        return self.count >= self.threshold


def baseline(counts: Mapping[datetime, int], hour: datetime, calendar: BusinessCalendar) -> float:
    """Expected count: this hour of day and its neighbours on the latest days of the same kind, the
    highest fifth of the values dropped (one noisy day is 3 of 18), the rest averaged."""
    local = hour + BEIJING
    kinds = [day_kind(local.date(), calendar)]
    if kinds[0] == "holiday":
        kinds.append("weekend")
    for kind in kinds:
        seen: list[int] = []
        for back in range(1, LOOKBACK_DAYS + 1):
            earlier = hour - timedelta(days=back)
            if day_kind((earlier + BEIJING).date(), calendar) == kind:
                seen += [counts.get(earlier + timedelta(hours=d), 0) for d in (-1, 0, 1)]
                if len(seen) == 3 * WINDOW_DAYS:
                    break
        if len(seen) >= 9:
            kept = sorted(seen)[: len(seen) - max(1, len(seen) // 5)]
            return float(np.mean(kept))
    return 0.0


def threshold(expected: float) -> int:
    return max(MIN_COUNT, math.ceil(expected + K * math.sqrt(expected + 0.5) + 1))


def check(series: Series, counts: Mapping[datetime, int], hour: datetime, calendar: BusinessCalendar) -> Check:
    expected = baseline(counts, hour, calendar)
    return Check(series, hour, counts.get(hour, 0), expected, threshold(expected))


# -- replay evaluation -------------------------------------------------------------------------


def _rate(series_level: float, local: datetime, kind: str) -> float:
    """Complaints per hour: business-hours shape, quieter weekends and holidays."""
    h = local.hour
    shape = 0.15 if h < 8 else 1.0 if 9 <= h < 12 or 13 <= h < 18 else 0.6 if h < 22 else 0.3
    return series_level * shape * {"workday": 1.0, "weekend": 0.7, "holiday": 0.5}[kind]


def replay(*, months: int = 6, seed: int = 0, spikes: int = 24, start: date = date(2026, 1, 1),
           tick_minutes: int = 10) -> dict[str, object]:  # fmt: skip
    """Synthetic complaint history on the real Chinese calendar (Poisson arrivals, 4 categories x 2 channels),
    with `spikes` injected bursts (+3x the usual rate and at least 4/hour, 3 hours) and, before half of them,
    a whole noisy day at double rate. The detector runs every `tick_minutes` on the running hour's count;
    reports detection delay and false alarms per month (alerts outside an injected burst)."""
    rng = random.Random(seed)
    np_rng = np.random.default_rng(seed)
    calendar = BusinessCalendar()
    levels = {("物流配送", "wechat_oa"): 2.0, ("物流配送", "webchat"): 1.0, ("商品质量", "wechat_oa"): 1.2,
              ("商品质量", "webchat"): 0.6, ("退款售后", "wechat_oa"): 1.5, ("退款售后", "webchat"): 0.8,
              ("服务态度", "wechat_oa"): 0.4, ("服务态度", "webchat"): 0.2}  # fmt: skip
    begin = datetime(start.year, start.month, start.day, tzinfo=UTC) - BEIJING
    hours = int(months * 30.4 * 24)
    warmup = LOOKBACK_DAYS * 24  # the first weeks build the baseline and are not scored
    injected: list[tuple[Series, datetime, datetime]] = []
    series_list = sorted(levels)
    for _ in range(spikes):
        s = rng.choice(series_list)
        at = begin + timedelta(hours=rng.randrange(warmup + 48, hours - 6), minutes=rng.randrange(0, 60))
        injected.append((s, at, at + timedelta(hours=3)))
    events: dict[Series, list[datetime]] = {s: [] for s in series_list}
    noisy_days: list[tuple[Series, datetime]] = []
    for i, (s, at, _) in enumerate(injected):
        if i % 2 == 0:  # a noisy day the day before: the baseline must not let it hide the burst
            noisy = (at - timedelta(days=1)).replace(minute=0)
            noisy_days.append((s, noisy - timedelta(hours=noisy.hour)))
            for h in range(24):
                moment = noisy - timedelta(hours=noisy.hour) + timedelta(hours=h)
                rate = _rate(levels[s], moment + BEIJING, day_kind((moment + BEIJING).date(), calendar))
                events[s] += [moment + timedelta(minutes=float(m)) for m in np_rng.uniform(0, 60, np_rng.poisson(rate))]
    for s in series_list:
        for h in range(hours):
            moment = begin + timedelta(hours=h)
            rate = _rate(levels[s], moment + BEIJING, day_kind((moment + BEIJING).date(), calendar))
            for sp, a, b in injected:
                if sp == s and a < moment + timedelta(hours=1) and moment < b:
                    rate += max(4.0, 3 * rate)
            events[s] += [moment + timedelta(minutes=float(m)) for m in np_rng.uniform(0, 60, np_rng.poisson(rate))]
    delays: list[float] = []
    false_alarms = noisy_alarms = 0
    for s in series_list:
        times = sorted(events[s])
        counts: dict[datetime, int] = {}
        for t in times:
            counts[hour_start(t)] = counts.get(hour_start(t), 0) + 1
        alerted: set[datetime] = set()
        found: dict[int, float] = {}
        running: dict[datetime, int] = {}
        tick = begin + timedelta(hours=warmup)
        idx = next((i for i, t in enumerate(times) if t >= tick), len(times))
        end = begin + timedelta(hours=hours)
        while tick < end:
            tick += timedelta(minutes=tick_minutes)
            while idx < len(times) and times[idx] < tick:
                running[hour_start(times[idx])] = running.get(hour_start(times[idx]), 0) + 1
                idx += 1
            hour = hour_start(tick - timedelta(microseconds=1))
            if hour in alerted:
                continue
            result = check(s, _Window(counts, hour, running.get(hour, 0)), hour, calendar)
            if not result.alert:
                continue
            alerted.add(hour)
            slack = timedelta(hours=1)
            hits = [i for i, (sp, a, b) in enumerate(injected) if sp == s and a - slack < tick <= b + slack]
            if hits:
                for i in hits:
                    found.setdefault(i, (tick - injected[i][1]).total_seconds() / 60)
            elif any(sp == s and day <= tick < day + timedelta(days=1) for sp, day in noisy_days):
                noisy_alarms += 1  # the noisy day itself is unusual; counted apart, not as a false alarm
            else:
                false_alarms += 1
        delays += [max(d, 0.0) for d in found.values()]
    scored_months = (hours - warmup) / 24 / 30.4
    return {
        "months": months, "series": len(series_list), "injected": len(injected), "detected": len(delays),
        "median_delay_minutes": round(float(np.median(delays)), 1) if delays else None,
        "mean_delay_minutes": round(float(np.mean(delays)), 1) if delays else None,
        "noisy_day_alerts": noisy_alarms, "false_alarms": false_alarms,
        "false_alarms_per_month": round(false_alarms / scored_months, 2),
        "false_alarms_per_series_month": round(false_alarms / scored_months / len(series_list), 3),
    }  # fmt: skip


class _Window(dict[datetime, int]):
    """Counts as the detector sees them at one tick: the complete past hours plus the running one."""

    def __init__(self, full: dict[datetime, int], hour: datetime, running: int) -> None:
        super().__init__()
        self._full, self._hour, self._running = full, hour, running

    def get(self, key: datetime, default: int = 0) -> int:  # type: ignore[override]
        if key == self._hour:
            return self._running
        return self._full.get(key, default) if key < self._hour else default
