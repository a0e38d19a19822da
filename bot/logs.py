"""Structured logging: JSON lines when not on a TTY, readable console output otherwise."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from scrm.privacy import mask_text


def mask_pii(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Mainland mobile numbers never reach the logs in full (the one masking function, scrm.privacy)."""
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = mask_text(value)
    return event


def configure(level: str = "INFO", json: bool | None = None) -> None:
    as_json = (not sys.stdout.isatty()) if json is None else json
    renderer: Any = structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            mask_pii,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=level.upper(), format="%(message)s", stream=sys.stdout, force=True)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # one line per SQLite call, written from aiosqlite's thread: noise even at DEBUG
    logging.getLogger("aiosqlite").setLevel(logging.INFO)
