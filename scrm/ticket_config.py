"""Complaint-ticket configuration (config/tickets.yml): validated once at start, shared read-only."""

from __future__ import annotations

import re
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from models.ticket import Severity
from scrm.calendar import BusinessCalendar

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "config" / "tickets.yml"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


class CalendarConfig(_Model):
    timezone: str = "Asia/Shanghai"
    working_hours: list[tuple[str, str]] = [("09:00", "18:00")]
    holiday_file: Path | None = Path("holidays.yml")


class DetectionConfig(_Model):
    trigger_words: list[str] = []
    complaint_intents: list[str] = ["complaint"]
    min_intent_confidence: float = Field(0.6, ge=0, le=1)
    min_anger: float = Field(0.75, ge=0, le=1)


class CategoryConfig(_Model):
    skill: str = ""
    keywords: list[str] = []


class TaxonomyConfig(_Model):
    unclassified: str = "待分类"
    min_confidence: float = Field(0.45, ge=0, le=1)
    categories: dict[str, CategoryConfig]
    intent_categories: dict[str, str] = {}
    # What staff pick when resolving/closing: code -> label, and the root-cause (归因) list.
    resolution_codes: dict[str, str] = {}
    root_causes: list[str] = []

    @model_validator(mode="after")
    def _intent_targets_exist(self) -> TaxonomyConfig:
        for intent, category in self.intent_categories.items():
            if category not in self.categories:
                raise ValueError(f"intent {intent} maps to unknown category {category}")
        return self


class SeverityRule(_Model):
    """A rule matches when every condition it names holds; unnamed conditions are ignored."""

    name: str
    severity: Severity
    words: list[str] = []
    min_anger: float | None = None
    max_anger: float | None = None
    member_levels: list[str] = []
    value_tiers: list[str] = []
    repeat_within_days: int | None = Field(None, ge=1)
    min_order_amount: float | None = None
    categories: list[str] = []

    @model_validator(mode="after")
    def _has_a_condition(self) -> SeverityRule:
        conditions = (
            self.words,
            self.min_anger is not None,
            self.max_anger is not None,
            self.member_levels or self.value_tiers,
            self.repeat_within_days,
            self.min_order_amount is not None,
            self.categories,
        )
        if not any(conditions):
            raise ValueError(f"severity rule {self.name!r} has no condition")
        return self


class SeverityConfig(_Model):
    default: Severity = Severity.P3
    rules: list[SeverityRule] = []


class SlaPolicy(_Model):
    first_response_minutes: int = Field(ge=1)
    resolution_minutes: int = Field(ge=1)

    @property
    def first_response(self) -> timedelta:
        return timedelta(minutes=self.first_response_minutes)

    @property
    def resolution(self) -> timedelta:
        return timedelta(minutes=self.resolution_minutes)


class SlaConfig(_Model):
    warning_ratio: float = Field(0.8, gt=0, lt=1)
    policies: dict[Severity, SlaPolicy]

    @field_validator("policies")
    @classmethod
    def _every_severity(cls, value: dict[Severity, SlaPolicy]) -> dict[Severity, SlaPolicy]:
        missing = set(Severity) - set(value)
        if missing:
            raise ValueError(f"SLA policy missing for {sorted(missing)}")
        return value


class AssignmentConfig(_Model):
    strategy: Literal["least_loaded", "round_robin"] = "least_loaded"
    supervisor_skill: str = "主管"


class WaitingConfig(_Model):
    remind_after_hours: float = Field(24, gt=0)
    close_after_days: float = Field(3, gt=0)


class SurveyConfig(_Model):
    close_min_score: int = Field(4, ge=1, le=5)
    reopen_words: list[str] = ["没解决"]


class FlowConfig(_Model):
    timeout_minutes: int = Field(30, ge=1)
    order_pattern: str
    cancel_words: list[str] = ["取消"]

    @field_validator("order_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        re.compile(value)
        return value


class TicketConfig(_Model):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    calendar: CalendarConfig = CalendarConfig()
    detection: DetectionConfig = DetectionConfig()
    taxonomy: TaxonomyConfig
    severity: SeverityConfig = SeverityConfig()
    sla: SlaConfig
    assignment: AssignmentConfig = AssignmentConfig()
    waiting_customer: WaitingConfig = WaitingConfig()
    survey: SurveyConfig = SurveyConfig()
    flow: FlowConfig
    texts: dict[str, str]

    @field_validator("texts")
    @classmethod
    def _known_texts(cls, value: dict[str, str]) -> dict[str, str]:
        needed = {"received", "handling", "resolved", "reopened", "closed", "reminder", "auto_closed"}
        missing = needed - set(value)
        if missing:
            raise ValueError(f"texts missing: {sorted(missing)}")
        return value

    @cached_property
    def order_regex(self) -> re.Pattern[str]:
        return re.compile(self.flow.order_pattern)

    def text(self, key: str, **values: object) -> str:
        return self.texts[key].format(**values)

    def build_calendar(self, data_dir: Path | None = None) -> BusinessCalendar:
        holiday_file = self.calendar.holiday_file
        if holiday_file is not None and not holiday_file.is_absolute() and data_dir is not None:
            holiday_file = data_dir / holiday_file
        return BusinessCalendar.build(
            hours=self.calendar.working_hours, tz=self.calendar.timezone, override_file=holiday_file
        )


def load_ticket_config(path: Path | None = None) -> TicketConfig:
    """Read and validate the YAML; a bad file fails loudly at start, not at the first complaint."""
    source = path or DEFAULT_PATH
    data = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    return TicketConfig.model_validate(data)
