"""Business calendar on real boundaries: National Day 2026, Spring Festival 2026 (调休 Saturdays), 2027."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from scrm.calendar import BusinessCalendar, CalendarFileError, load_override_file, parse_override

CST = ZoneInfo("Asia/Shanghai")
H = dt.timedelta(hours=1)


def at(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=CST)


@pytest.fixture
def cal() -> BusinessCalendar:
    return BusinessCalendar.build(hours=[("09:00", "18:00")])


def test_ticket_opened_evening_before_national_day_2026_is_due_after_the_golden_week(
    cal: BusinessCalendar,
) -> None:
    opened = at(2026, 9, 30, 20, 0)  # Wednesday evening, after hours; Oct 1–7 off
    assert cal.add_business_time(opened, 4 * H) == at(2026, 10, 8, 13, 0)
    assert cal.add_business_time(opened, 16 * H) == at(2026, 10, 9, 16, 0)
    # 2 h from 17:00: one hour that evening, one on Oct 8
    assert cal.add_business_time(at(2026, 9, 30, 17, 0), 2 * H) == at(2026, 10, 8, 10, 0)
    # Oct 10 (Saturday) is an adjusted workday in 2026, Oct 11 (Sunday) is not
    assert cal.add_business_time(at(2026, 10, 9, 17, 0), 2 * H) == at(2026, 10, 10, 10, 0)
    assert cal.business_time_between(opened, at(2026, 10, 8, 12, 0)) == 3 * H
    assert cal.holiday_name(dt.date(2026, 10, 3)) == "国庆节"


def test_spring_festival_2026_counts_adjusted_saturdays_and_skips_the_nine_days_off(
    cal: BusinessCalendar,
) -> None:
    assert cal.is_workday(dt.date(2026, 2, 14))  # Saturday 调休
    assert cal.is_workday(dt.date(2026, 2, 28))  # Saturday 调休
    assert not cal.is_workday(dt.date(2026, 3, 7))  # an ordinary Saturday
    assert not any(cal.is_workday(dt.date(2026, 2, d)) for d in range(15, 24))
    first_three = cal.adjusted_workdays(2026)[:3]
    assert first_three == [dt.date(2026, 1, 4), dt.date(2026, 2, 14), dt.date(2026, 2, 28)]
    # Friday 17:00 + 2 h -> Saturday Feb 14 10:00
    assert cal.add_business_time(at(2026, 2, 13, 17), 2 * H) == at(2026, 2, 14, 10)
    # Saturday Feb 14 17:00 + 4 h -> Tuesday Feb 24 12:00 (Feb 15–23 off)
    assert cal.add_business_time(at(2026, 2, 14, 17), 4 * H) == at(2026, 2, 24, 12)
    # Friday Feb 27 17:00 + 2 h -> Saturday Feb 28 10:00
    assert cal.add_business_time(at(2026, 2, 27, 17), 2 * H) == at(2026, 2, 28, 10)
    # working days between: Feb 13, Feb 14 (Saturday) and Feb 24
    assert cal.business_time_between(at(2026, 2, 13, 9), at(2026, 2, 25, 9)) == 3 * 9 * H
    assert cal.source(2026) == "library"


def test_2027_falls_back_to_lunar_festivals_and_warns_once(cal: BusinessCalendar) -> None:
    with capture_logs() as logs:
        assert cal.source(2027) == "fallback"
        # 春节 2027: 除夕 Fri Feb 5 – 初三 Mon Feb 8, Sat/Sun made up on Tue 9 and Wed 10
        assert [d.day for d, n in cal.holidays(2027).items() if n == "春节"] == [5, 6, 7, 8, 9, 10]
        assert cal.add_business_time(at(2027, 2, 4, 17), 2 * H) == at(2027, 2, 11, 10)
        assert not cal.is_workday(dt.date(2027, 6, 9))  # 端午 (lunar 5/5)
        assert not cal.is_workday(dt.date(2027, 9, 15))  # 中秋 (lunar 8/15)
        assert not cal.is_workday(dt.date(2027, 4, 5))  # 清明 (solar term)
        assert cal.is_workday(dt.date(2027, 10, 6))
        cal.is_workday(dt.date(2027, 3, 1))
    warnings = [e for e in logs if e["event"] == "calendar.fallback"]
    assert len(warnings) == 1 and warnings[0]["year"] == 2027


def test_admin_override_file_replaces_the_fallback(tmp_path: Path, cal: BusinessCalendar) -> None:
    path = tmp_path / "holidays.yml"
    path.write_text(
        "2027:\n"
        "  holidays:\n"
        "    春节: [2027-02-05, 2027-02-12]\n"
        "    元旦: 2027-01-01\n"
        "  workdays: [2027-02-20]\n"
        "2028:\n"
        "  holidays:\n"
        "    元旦: [2027-12-31, 2028-01-01]\n",
        encoding="utf-8",
    )
    with capture_logs() as logs:
        cal.load_overrides(load_override_file(path))
        assert cal.source(2027) == "override"
        assert not cal.is_workday(dt.date(2027, 2, 12))
        assert cal.is_workday(dt.date(2027, 2, 20))  # Saturday 调休 from the official notice
        assert cal.add_business_time(at(2027, 2, 4, 17), 2 * H) == at(2027, 2, 15, 10)
        assert not cal.is_workday(dt.date(2027, 12, 31))  # a 2028 break reaching back into 2027
    assert not [e for e in logs if e["event"] == "calendar.fallback"]


@pytest.mark.parametrize(
    "doc",
    [
        "just text",
        {"20x7": {}},
        {2027: {"holidays": {"春节": ["2027-02-12", "2027-02-05"]}}},
        {2027: {"holidays": {"春节": "tomorrow"}}},
        {2027: {"holidays": {"春节": "2027-02-05"}, "workdays": ["2027-02-05"]}},
    ],
)
def test_malformed_override_is_refused_with_a_reason(doc: object) -> None:
    with pytest.raises(CalendarFileError):
        parse_override(doc)


def test_lunch_break_and_utc_input(cal: BusinessCalendar) -> None:
    split = BusinessCalendar.build(hours=[("09:00", "12:00"), ("13:30", "18:00")])
    assert split.add_business_time(at(2026, 11, 23, 11), 2 * H) == at(2026, 11, 23, 14, 30)
    utc_start = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)  # 09:00 in Shanghai
    due = cal.add_business_time(utc_start, 3 * H)
    assert due.tzinfo is dt.UTC and due == dt.datetime(2026, 11, 23, 4, 0, tzinfo=dt.UTC)
    # the clock starts when business opens: zero time on a Sunday is Monday 09:00
    assert cal.add_business_time(at(2026, 11, 22, 10), dt.timedelta(0)) == at(2026, 11, 23, 9)
    with pytest.raises(ValueError):
        BusinessCalendar.build(hours=[("18:00", "09:00")])


def test_festivals_for_care_messages(cal: BusinessCalendar) -> None:
    days = cal.festivals(2027)
    assert days[dt.date(2027, 2, 6)] == "春节"
    assert days[dt.date(2027, 2, 5)] == "除夕"
    assert days[dt.date(2027, 9, 15)] == "中秋节"
    assert set(cal.festivals(2026, traditional=False).values()) == {
        "元旦",
        "春节",
        "清明节",
        "劳动节",
        "端午节",
        "中秋节",
        "国庆节",
    }


_CAL = BusinessCalendar.build(hours=[("09:00", "12:00"), ("13:30", "18:00")])


@settings(max_examples=150, deadline=None)
@given(
    start=st.datetimes(min_value=dt.datetime(2025, 12, 1), max_value=dt.datetime(2027, 11, 30)),
    minutes=st.integers(min_value=0, max_value=60 * 200),
)
def test_add_and_between_are_inverse(start: dt.datetime, minutes: int) -> None:
    begin = start.replace(tzinfo=dt.UTC)
    due = _CAL.add_business_time(begin, dt.timedelta(minutes=minutes))
    assert due >= begin
    assert _CAL.business_time_between(begin, due) == dt.timedelta(minutes=minutes)
