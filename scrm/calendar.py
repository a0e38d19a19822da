"""Chinese business calendar: public holidays, adjusted working days (调休) and business-time arithmetic.

Where a year's schedule comes from, first match wins:
1. an admin-loaded YAML override (the official State Council notice, typed in once a year);
2. the `chinese_calendar` library (covers 2004–2026 in 1.11; raises NotImplementedError after);
3. a fallback: weekends plus the statutory festivals computed from the lunar calendar
   (全国年节及纪念日放假办法, 2025 revision), with a festival day that falls on a weekend
   made up on the next weekday. No 调休 Saturdays can be predicted; a warning is logged once per year.

All datetimes in and out are timezone-aware; business hours are local (Asia/Shanghai by default).
Naive datetimes are read as UTC, like everything we store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import structlog
import yaml
from lunardate import LunarDate

from models import aware

log = structlog.get_logger(__name__)

Source = Literal["override", "library", "fallback"]
DEFAULT_TZ = "Asia/Shanghai"
DEFAULT_HOURS: tuple[tuple[dt.time, dt.time], ...] = ((dt.time(9), dt.time(18)),)
BUSINESS_TZ = ZoneInfo(DEFAULT_TZ)
MAX_DAYS_SCANNED = 3 * 366  # an SLA never spans more than this; stops a misconfigured calendar looping

# chinese_calendar's English names -> what customers and agents read.
_LIBRARY_NAMES = {
    "New Year's Day": "元旦",
    "Spring Festival": "春节",
    "Tomb-sweeping Day": "清明节",
    "Labour Day": "劳动节",
    "Dragon Boat Festival": "端午节",
    "National Day": "国庆节",
    "Mid-autumn Festival": "中秋节",
    "Anti-Fascist 70th Day": "抗战胜利70周年纪念日",
}


@dataclass(frozen=True, slots=True)
class YearSchedule:
    """One year's days off (with festival names) and adjusted working days (调休, usually Saturdays)."""

    year: int
    holidays: Mapping[dt.date, str]
    workdays: frozenset[dt.date]
    source: Source


def local_today(now: dt.datetime, tz: ZoneInfo = BUSINESS_TZ) -> dt.date:
    """The brand's "today" at `now` (a stored UTC time near midnight is already tomorrow in Beijing)."""
    return aware(now).astimezone(tz).date()


def day_bounds(first: dt.date, last: dt.date, tz: ZoneInfo = BUSINESS_TZ) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) in UTC of the local days `first`..`last` inclusive: dates people type are local dates."""
    start = dt.datetime.combine(first, dt.time(0), tzinfo=tz).astimezone(dt.UTC)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(0), tzinfo=tz).astimezone(dt.UTC)
    return start, end


class CalendarFileError(ValueError):
    """The override YAML is malformed; the message says where."""


@dataclass(slots=True)
class BusinessCalendar:
    """Workdays and business hours. Build once per app (`from_settings`/constructor) and share it.

    `hours` are the daily working intervals in local time, e.g. ((09:00, 12:00), (13:30, 18:00)).
    """

    hours: tuple[tuple[dt.time, dt.time], ...] = DEFAULT_HOURS
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo(DEFAULT_TZ))
    overrides: dict[int, YearSchedule] = field(default_factory=dict)
    _cache: dict[int, YearSchedule] = field(default_factory=dict, repr=False)
    _warned: set[int] = field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        previous_end: dt.time | None = None
        for start, end in self.hours:
            if not start < end:
                raise ValueError(f"working interval {start}-{end} must end after it starts")
            if previous_end is not None and start < previous_end:
                raise ValueError("working intervals must be in order and must not overlap")
            previous_end = end
        if not self.hours:
            raise ValueError("at least one working interval is needed")

    # ----- construction -------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        *,
        hours: Iterable[tuple[str, str]] | None = None,
        tz: str = DEFAULT_TZ,
        override_file: Path | None = None,
    ) -> BusinessCalendar:
        """From config values: hours as ("09:00", "18:00") pairs, an optional override YAML path."""
        parsed = tuple((_parse_time(a), _parse_time(b)) for a, b in hours) if hours else DEFAULT_HOURS
        overrides = load_override_file(override_file) if override_file and override_file.exists() else {}
        return cls(hours=parsed, tz=ZoneInfo(tz), overrides=overrides)

    def load_overrides(self, schedules: Mapping[int, YearSchedule]) -> None:
        """Install official schedules (e.g. after an admin loaded a new YAML file)."""
        self.overrides.update(schedules)
        for year in schedules:
            for near in (year - 1, year, year + 1):
                self._cache.pop(near, None)

    # ----- days ---------------------------------------------------------------------------------

    def schedule(self, year: int) -> YearSchedule:
        cached = self._cache.get(year)
        if cached is None:
            cached = self.overrides.get(year) or _library_schedule(year) or self._fallback(year)
            cached = self._with_neighbour_overrides(cached)
            self._cache[year] = cached
        return cached

    def _with_neighbour_overrides(self, sched: YearSchedule) -> YearSchedule:
        """An official 元旦 break can start on Dec 31 of the year before: honour it from either file."""
        holidays, workdays = dict(sched.holidays), set(sched.workdays)
        for other in (sched.year - 1, sched.year + 1):
            neighbour = self.overrides.get(other)
            if neighbour is None:
                continue
            holidays.update({d: n for d, n in neighbour.holidays.items() if d.year == sched.year})
            workdays.update(d for d in neighbour.workdays if d.year == sched.year)
        if len(holidays) == len(sched.holidays) and len(workdays) == len(sched.workdays):
            return sched
        return YearSchedule(sched.year, holidays, frozenset(workdays - holidays.keys()), sched.source)

    def source(self, year: int) -> Source:
        return self.schedule(year).source

    def is_workday(self, day: dt.date) -> bool:
        sched = self.schedule(day.year)
        if day in sched.workdays:
            return True
        if day in sched.holidays:
            return False
        return day.weekday() < 5

    def is_holiday(self, day: dt.date) -> bool:
        """A public holiday (not a plain weekend)."""
        return day in self.schedule(day.year).holidays

    def holiday_name(self, day: dt.date) -> str | None:
        return self.schedule(day.year).holidays.get(day)

    def holidays(self, year: int) -> dict[dt.date, str]:
        """Every day off for a public holiday in `year` (including bridged days), with its name."""
        return dict(sorted(self.schedule(year).holidays.items()))

    def adjusted_workdays(self, year: int) -> list[dt.date]:
        """Weekend days that are working days (调休)."""
        return sorted(self.schedule(year).workdays)

    def festivals(self, year: int, *, traditional: bool = True) -> dict[dt.date, str]:
        """The festival day itself (not the days off around it) — for care messages.

        Statutory: 元旦 春节 清明节 劳动节 端午节 中秋节 国庆节; `traditional` adds 除夕 元宵节 七夕节 重阳节.
        Computed from the lunar calendar and solar terms, so it works for any year.
        """
        days = dict(_statutory_festival_days(year))
        if traditional:
            days[_lunar(year, 1, 1) - dt.timedelta(days=1)] = "除夕"
            days[_lunar(year, 1, 15)] = "元宵节"
            days[_lunar(year, 7, 7)] = "七夕节"
            days[_lunar(year, 9, 9)] = "重阳节"
        return dict(sorted(days.items()))

    def next_workday(self, day: dt.date) -> dt.date:
        for _ in range(MAX_DAYS_SCANNED):
            day += dt.timedelta(days=1)
            if self.is_workday(day):
                return day
        raise RuntimeError("no working day within three years: check the calendar configuration")

    # ----- business time ------------------------------------------------------------------------

    def is_business_time(self, moment: dt.datetime) -> bool:
        local = aware(moment).astimezone(self.tz)
        if not self.is_workday(local.date()):
            return False
        return any(start <= local.time() < end for start, end in self.hours)

    def add_business_time(self, start: dt.datetime, duration: dt.timedelta) -> dt.datetime:
        """The moment `duration` of working time after `start` (returned in the caller's timezone).

        Time outside working hours does not count: 2 h added at 17:30 on the day before a holiday
        lands at 10:30 on the next working day (09:00–18:00).
        """
        if duration < dt.timedelta(0):
            raise ValueError("duration must not be negative")
        start = aware(start)
        cursor = start.astimezone(self.tz)
        remaining = duration
        day = cursor.date()
        for _ in range(MAX_DAYS_SCANNED):
            if self.is_workday(day):
                for open_at, close_at in self._intervals(day):
                    begin = max(cursor, open_at)
                    if begin >= close_at:
                        continue
                    available = close_at - begin
                    if remaining <= available:
                        return (begin + remaining).astimezone(start.tzinfo)
                    remaining -= available
                    cursor = close_at
            day += dt.timedelta(days=1)
        raise RuntimeError("business time ran past three years: check the calendar configuration")

    def business_time_between(self, start: dt.datetime, end: dt.datetime) -> dt.timedelta:
        """Working time from `start` to `end` (negative when `end` is earlier)."""
        a, b = aware(start).astimezone(self.tz), aware(end).astimezone(self.tz)
        if b < a:
            return -self.business_time_between(end, start)
        total = dt.timedelta(0)
        day = a.date()
        while day <= b.date():
            if self.is_workday(day):
                for open_at, close_at in self._intervals(day):
                    overlap = min(b, close_at) - max(a, open_at)
                    if overlap > dt.timedelta(0):
                        total += overlap
            day += dt.timedelta(days=1)
        return total

    def _intervals(self, day: dt.date) -> list[tuple[dt.datetime, dt.datetime]]:
        return [
            (dt.datetime.combine(day, s, tzinfo=self.tz), dt.datetime.combine(day, e, tzinfo=self.tz))
            for s, e in self.hours
        ]

    def _fallback(self, year: int) -> YearSchedule:
        if year not in self._warned:
            self._warned.add(year)
            log.warning(
                "calendar.fallback",
                year=year,
                detail="no official holiday schedule for this year: using weekends + lunar festivals "
                "without 调休; load the official notice with `huike calendar load FILE.yml`",
            )
        return fallback_schedule(year)


# ----- schedules ----------------------------------------------------------------------------------


def _library_schedule(year: int) -> YearSchedule | None:
    import chinese_calendar

    first, last = dt.date(year, 1, 1), dt.date(year, 12, 31)
    try:
        chinese_calendar.is_workday(first)
    except NotImplementedError:
        return None
    holidays: dict[dt.date, str] = {}
    workdays: set[dt.date] = set()
    day = first
    while day <= last:
        on_holiday, name = chinese_calendar.get_holiday_detail(day)
        if on_holiday and name:
            holidays[day] = _LIBRARY_NAMES.get(name, name)
        elif not on_holiday and day.weekday() >= 5:
            workdays.add(day)
        day += dt.timedelta(days=1)
    return YearSchedule(year=year, holidays=holidays, workdays=frozenset(workdays), source="library")


def _lunar(year: int, month: int, day: int) -> dt.date:
    return LunarDate(year, month, day).to_solar_date()  # type: ignore[no-any-return]


def _qingming(year: int) -> dt.date:
    import chinese_calendar

    for day, name in chinese_calendar.get_solar_terms(dt.date(year, 4, 3), dt.date(year, 4, 6)):
        if name == "清明":
            return day  # type: ignore[no-any-return]
    return dt.date(year, 4, 5)  # the solar term is always Apr 4–5 in this era


def _statutory_festival_days(year: int) -> list[tuple[dt.date, str]]:
    return [
        (dt.date(year, 1, 1), "元旦"),
        (_lunar(year, 1, 1), "春节"),
        (_qingming(year), "清明节"),
        (dt.date(year, 5, 1), "劳动节"),
        (_lunar(year, 5, 5), "端午节"),
        (_lunar(year, 8, 15), "中秋节"),
        (dt.date(year, 10, 1), "国庆节"),
    ]


def _statutory_blocks(year: int) -> list[tuple[str, list[dt.date]]]:
    """Statutory days off per festival (2025 rules: 春节 除夕–初三, 劳动节 2 days, 国庆 3 days)."""
    day = dt.timedelta(days=1)
    new_year = _lunar(year, 1, 1)
    blocks = [
        ("元旦", [dt.date(year, 1, 1)]),
        ("春节", [new_year - day, new_year, new_year + day, new_year + 2 * day]),
        ("清明节", [_qingming(year)]),
        ("劳动节", [dt.date(year, 5, 1), dt.date(year, 5, 2)]),
        ("端午节", [_lunar(year, 5, 5)]),
        ("中秋节", [_lunar(year, 8, 15)]),
        ("国庆节", [dt.date(year, 10, d) for d in (1, 2, 3)]),
    ]
    return blocks


def fallback_schedule(year: int) -> YearSchedule:
    """Weekends + statutory festivals; a statutory day on a weekend is made up on the next weekday(s)."""
    holidays: dict[dt.date, str] = {}
    for name, days in _statutory_blocks(year):
        owed = 0
        for d in days:
            if d in holidays or d.weekday() >= 5:
                owed += 1  # on a weekend or shared with another festival (中秋 on 国庆): made up later
            holidays.setdefault(d, name)
        cursor = max(days)
        while owed:
            cursor += dt.timedelta(days=1)
            if cursor.weekday() < 5 and cursor not in holidays:
                holidays[cursor] = name
                owed -= 1
    return YearSchedule(
        year=year,
        holidays={d: n for d, n in holidays.items() if d.year == year},
        workdays=frozenset(),
        source="fallback",
    )


# ----- override file ------------------------------------------------------------------------------


def parse_override(data: Any) -> dict[int, YearSchedule]:
    """Parse the override YAML document.

    Format (one key per year; a year listed here replaces the library/fallback for that year)::

        2027:
          holidays:
            元旦: [2027-01-01, 2027-01-03]   # first and last day off, or a single date
            春节: [2027-02-05, 2027-02-12]
          workdays: [2027-02-20]            # adjusted Saturdays/Sundays (调休)
    """
    if not isinstance(data, dict):
        raise CalendarFileError("the calendar file must map years to {holidays, workdays}")
    schedules: dict[int, YearSchedule] = {}
    for raw_year, body in data.items():
        try:
            year = int(raw_year)
        except (TypeError, ValueError):
            raise CalendarFileError(f"{raw_year!r} is not a year") from None
        if not isinstance(body, dict):
            raise CalendarFileError(f"{year}: expected holidays/workdays")
        holidays: dict[dt.date, str] = {}
        for name, span in (body.get("holidays") or {}).items():
            first, last = _span(year, name, span)
            cursor = first
            while cursor <= last:
                holidays[cursor] = str(name)
                cursor += dt.timedelta(days=1)
        workdays = frozenset(_date(year, "workdays", d) for d in body.get("workdays") or [])
        clash = workdays & holidays.keys()
        if clash:
            raise CalendarFileError(f"{year}: {sorted(clash)[0]} is both a holiday and a workday")
        schedules[year] = YearSchedule(year=year, holidays=holidays, workdays=workdays, source="override")
    return schedules


def load_override_file(path: Path) -> dict[int, YearSchedule]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CalendarFileError(f"{path}: not valid YAML ({exc})") from None
    return parse_override(data or {})


def _span(year: int, name: object, span: object) -> tuple[dt.date, dt.date]:
    if isinstance(span, list) and len(span) == 2:
        first, last = _date(year, name, span[0]), _date(year, name, span[1])
    elif isinstance(span, list) and len(span) == 1:
        first = last = _date(year, name, span[0])
    else:
        first = last = _date(year, name, span)
    if last < first or (last - first).days > 15:
        raise CalendarFileError(f"{year} {name}: {first}..{last} is not a plausible holiday span")
    return first, last


def _date(year: int, where: object, value: object) -> dt.date:
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value)
        except ValueError:
            raise CalendarFileError(f"{year} {where}: {value!r} is not a date (YYYY-MM-DD)") from None
    if not isinstance(value, dt.date):
        raise CalendarFileError(f"{year} {where}: {value!r} is not a date (YYYY-MM-DD)")
    if abs(value.year - year) > 1:
        raise CalendarFileError(f"{year} {where}: {value} is not in {year}")
    return value


def _parse_time(value: str | dt.time) -> dt.time:
    if isinstance(value, dt.time):
        return value
    return dt.time.fromisoformat(str(value))
