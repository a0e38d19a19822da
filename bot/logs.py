"""Structured logging: JSON lines when not on a TTY, readable console output otherwise."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from aiohttp.http_exceptions import HttpProcessingError

from scrm.privacy import mask_text


def mask_pii(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Mainland mobile numbers never reach the logs in full (the one masking function, scrm.privacy)."""
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = mask_text(value)
    return event


class OneLineBadRequests(logging.Filter):
    """aiohttp logs a client's malformed request (an over-long request line, a bad header) with a full
    traceback: anyone could fill the log. Such a request is the client's fault; one line says enough."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            detail = f"{type(exc).__name__}: {str(exc.message).split(':')[0]}"[:120]  # not the client's bytes
            record.msg, record.args = "bad_http_request from %s: %s", (remote, detail)
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


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
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, OneLineBadRequests) for f in server.filters):
        server.addFilter(OneLineBadRequests())
    # one line per SQLite call, written from aiosqlite's thread: noise even at DEBUG
    logging.getLogger("aiosqlite").setLevel(logging.INFO)
