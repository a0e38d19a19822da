"""SCRM configuration from config/scrm.yml: thresholds, tiers, levels, care guards, seed rules."""

from __future__ import annotations

from datetime import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field

SCRM_YML = Path(__file__).resolve().parent.parent / "config" / "scrm.yml"


class LifecycleThresholds(BaseModel):
    new_days: int = 30
    mature_orders: int = 5
    decline_days: int = 90
    churn_days: int = 180
    return_days: int = 30


class ValueThresholds(BaseModel):
    high: dict[str, int] = Field(default_factory=lambda: {"r": 3, "f": 4, "m": 4})
    potential: dict[str, int] = Field(default_factory=lambda: {"r": 4})
    general: dict[str, int] = Field(default_factory=lambda: {"r": 2})


class MemberLevel(BaseModel):
    name: str
    min_points: int = 0
    min_spend: float = 0


class QuietHours(BaseModel):
    start: time = time(22, 0)
    end: time = time(8, 0)


class CareSettings(BaseModel):
    quiet_hours: QuietHours = Field(default_factory=QuietHours)
    weekly_cap: int = 2
    wechat_window_hours: int = 48


class ScrmConfig(BaseModel):
    timezone: str = "Asia/Shanghai"
    lifecycle: LifecycleThresholds = Field(default_factory=LifecycleThresholds)
    value: ValueThresholds = Field(default_factory=ValueThresholds)
    member_levels: list[MemberLevel] = Field(default_factory=list)
    care: CareSettings = Field(default_factory=CareSettings)
    tag_rules: list[dict[str, Any]] = Field(default_factory=list)
    care_rules: list[dict[str, Any]] = Field(default_factory=list)


def load_scrm_config(path: Path | None = None) -> ScrmConfig:
    data = yaml.safe_load((path or SCRM_YML).read_text(encoding="utf-8")) or {}
    return ScrmConfig.model_validate(data)


@lru_cache(maxsize=1)
def scrm_config() -> ScrmConfig:
    """The packaged defaults (read once; a file, not import-time settings)."""
    return load_scrm_config()
