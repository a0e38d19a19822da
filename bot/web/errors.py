"""Middlewares: request ids, metrics, and errors as JSON `{code, message}` — never a stack trace."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from http import HTTPStatus

import structlog
from aiohttp import web
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from bot import metrics
from scrm.errors import DomainError

log = structlog.get_logger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

UNAVAILABLE = "服务暂时不可用，请稍后重试"
INTERNAL = "服务暂时异常，请稍后再试"


def json_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status)


def database_down(exc: BaseException) -> bool:
    """Connection-level failures (database restarting, pool exhausted), not bad queries."""
    if isinstance(exc, OperationalError | PoolTimeout | ConnectionError | TimeoutError | OSError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request.headers.get("X-Request-ID", "")[:64] or uuid.uuid4().hex[:16]
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-ID"] = request_id
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
        metrics.HTTP_REQUESTS.labels(request.method, route, str(status)).inc()
        log.debug("request", method=request.method, path=request.path, status=status,
                  ms=round((time.perf_counter() - started) * 1000, 1))
        structlog.contextvars.unbind_contextvars("request_id")


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DomainError as exc:
        response = json_error(exc.status, exc.code, exc.message)
        if retry_after := getattr(exc, "retry_after", None):
            response.headers["Retry-After"] = str(retry_after)
        return response
    except web.HTTPRequestEntityTooLarge:
        return json_error(413, "too_large", "请求内容过大")
    except web.HTTPException as exc:
        if exc.status < 400 or not _wants_json(request):
            raise
        code = HTTPStatus(exc.status).phrase.lower().replace(" ", "_").replace("-", "_")
        return json_error(exc.status, code, exc.text or exc.reason)
    except Exception as exc:
        if database_down(exc):
            log.warning("database_unavailable", path=request.path, error=str(exc)[:200])
            response = json_error(503, "unavailable", UNAVAILABLE)
            response.headers["Retry-After"] = "1"
            return response
        log.exception("unhandled_error", path=request.path)
        return json_error(500, "internal", INTERNAL)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every response (pages, API, static, errors): no MIME sniffing, no version banner, and API
    answers (personal data) are never stored by a browser or proxy cache."""
    response.headers["Server"] = "Huike"
    response.headers["X-Content-Type-Options"] = "nosniff"
    if request.path.startswith("/api/"):
        response.headers["Cache-Control"] = "no-store"


def _wants_json(request: web.Request) -> bool:
    return request.path.startswith(("/api/", "/channels/")) or "json" in request.headers.get("Accept", "")
