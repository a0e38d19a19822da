"""Entity extraction: regexes and lookup tables from the training data, plus built-in
phone numbers, amounts and (relative) dates. Values go through the synonym table.

Offsets refer to the normalised text (`nlu.text.normalize`), which has the same length as the
input for ordinary Chinese text.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from nlu.text import normalize
from nlu.types import Entity

CUSTOMERS_TZ = ZoneInfo("Asia/Shanghai")  # "明天" is tomorrow where the customer is, not where the server is
PHONE_RE = re.compile(r"(?<!\d)(1[3-9]\d)[- ]?(\d{4})[- ]?(\d{4})(?!\d)")
_CN_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_CN_UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10000}
_CN_NUM = "[零〇一二两三四五六七八九十百千万]+"
AMOUNT_RE = re.compile(
    rf"(?:[¥￥]\s*(?P<a>\d+(?:\.\d+)?))|(?:(?P<b>\d+(?:\.\d+)?|{_CN_NUM})\s*(?:元|块钱|块|rmb|人民币))"
)
_WEEKDAYS = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6, "末": 5}
_RELATIVE_DAYS = {
    "大前天": -3,
    "前天": -2,
    "昨天": -1,
    "昨日": -1,
    "今天": 0,
    "今日": 0,
    "明天": 1,
    "明日": 1,
    "后天": 2,
    "大后天": 3,
}
DATE_RE = re.compile(
    r"(?P<ymd>(?P<y>\d{4})[-/.年](?P<m>\d{1,2})[-/.月](?P<d>\d{1,2})[日号]?)"
    r"|(?P<md>(?P<m2>\d{1,2})月(?P<d2>\d{1,2})[日号])"
    r"|(?P<week>(?P<wk>上上|上|这|本|下)?(?:个)?(?:周|星期|礼拜)(?P<wd>[一二三四五六日天末]))"
    r"|(?P<ago>(?P<n>\d+|[一二两三四五六七八九十]+)(?:天|日)(?P<dir>前|后|以前|之前|以后|之后))"
    r"|(?P<rel>大前天|前天|昨天|昨日|今天|今日|明天|明日|大后天|后天)"
)


def chinese_number(text: str) -> float | None:
    """'12', '3.5', '五十', '两百三十' -> number; None if not a number."""
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    total, section, digit = 0, 0, 0
    for ch in text:
        if ch in _CN_DIGITS:
            digit = _CN_DIGITS[ch]
        elif ch in _CN_UNITS:
            unit = _CN_UNITS[ch]
            if unit == 10000:
                total += (section + digit) * unit
                section = 0
            else:
                section += (digit or 1) * unit
            digit = 0
        else:
            return None
    return float(total + section + digit)


def resolve_date(match: re.Match[str], today: dt.date) -> dt.date | None:
    try:
        if match.group("ymd"):
            return dt.date(int(match.group("y")), int(match.group("m")), int(match.group("d")))
        if match.group("md"):
            return dt.date(today.year, int(match.group("m2")), int(match.group("d2")))
    except ValueError:
        return None
    if match.group("week"):
        offset_weeks = {"上上": -2, "上": -1, "下": 1}.get(match.group("wk") or "", 0)
        monday = today - dt.timedelta(days=today.weekday()) + dt.timedelta(weeks=offset_weeks)
        return monday + dt.timedelta(days=_WEEKDAYS[match.group("wd")])
    if match.group("ago"):
        n = chinese_number(match.group("n"))
        if n is None:
            return None
        sign = -1 if "前" in match.group("dir") else 1
        return today + dt.timedelta(days=sign * int(n))
    if match.group("rel"):
        return today + dt.timedelta(days=_RELATIVE_DAYS[match.group("rel")])
    return None


@dataclass
class EntityExtractor:
    regexes: Mapping[str, list[str]]
    lookups: Mapping[str, list[str]]
    synonyms: Mapping[str, str]

    def __post_init__(self) -> None:
        self._compiled: list[tuple[str, re.Pattern[str]]] = []
        for name, patterns in self.regexes.items():
            for pattern in patterns:
                try:
                    self._compiled.append((name, re.compile(pattern, re.IGNORECASE)))
                except re.error:
                    continue  # a bad pattern in user data must not break parsing
        # lookup values and their synonyms, longest first so 保温杯 beats 杯
        terms: dict[str, tuple[str, str]] = {}
        for name, values in self.lookups.items():
            for value in values:
                terms[normalize(value)] = (name, value)
        for variant, canonical in self.synonyms.items():
            for name, values in self.lookups.items():
                if canonical in values:
                    terms.setdefault(normalize(variant), (name, canonical))
        self._terms = terms
        self._term_lengths = sorted({len(t) for t in terms if t}, reverse=True)

    @property
    def vocabulary(self) -> list[str]:
        """Words to add to the tokenizer so that products stay one token."""
        return list(self._terms)

    def _canonical(self, value: str) -> str:
        return self.synonyms.get(value, value)

    def _regex_value(self, name: str, raw: str) -> str:
        if name == "order_id":
            return raw.upper()
        if name == "phone":
            return re.sub(r"\D", "", raw)
        return self._canonical(raw)

    def extract(self, text: str, *, today: dt.date | None = None) -> list[Entity]:
        norm = normalize(text)
        today = today or dt.datetime.now(CUSTOMERS_TZ).date()
        found: list[Entity] = []
        taken: list[tuple[int, int]] = []

        def add(name: str, value: object, start: int, end: int) -> None:
            if any(s < end and start < e for s, e in taken):
                return
            taken.append((start, end))
            found.append(Entity(name, value, start, end, norm[start:end]))

        for name, pattern in self._compiled:
            for m in pattern.finditer(norm):
                if m.end() > m.start():
                    add(name, self._regex_value(name, m.group(0)), m.start(), m.end())
        for m in PHONE_RE.finditer(norm):
            add("phone", "".join(m.groups()), m.start(), m.end())
        for m in DATE_RE.finditer(norm):
            day = resolve_date(m, today)
            if day is not None:
                add("date", day.isoformat(), m.start(), m.end())
        for m in AMOUNT_RE.finditer(norm):
            raw = m.group("a") or m.group("b")
            number = chinese_number(raw)
            if number is not None:
                add("amount", number, m.start(), m.end())
        self._lookup(norm, add)
        return sorted(found, key=lambda e: e.start)

    def _lookup(self, norm: str, add: object) -> None:
        if not self._terms:
            return
        i = 0
        while i < len(norm):
            for length in self._term_lengths:
                hit = self._terms.get(norm[i : i + length])
                if hit is not None:
                    name, value = hit
                    add(name, self._canonical(value), i, i + length)  # type: ignore[operator]
                    i += length - 1
                    break
            i += 1


def extractor_from(
    regexes: Mapping[str, Iterable[str]], lookups: Mapping[str, Iterable[str]], synonyms: Mapping[str, str]
) -> EntityExtractor:
    return EntityExtractor(
        {k: list(v) for k, v in regexes.items()}, {k: list(v) for k, v in lookups.items()}, dict(synonyms)
    )
