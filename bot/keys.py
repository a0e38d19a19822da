"""Typed keys for everything shared on the aiohttp Application (no module-level singletons)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import aiohttp
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.bus import LocalBus
from bot.engine import Engine
from bot.engine.followups import Followups
from bot.outbox import Outbox
from config.settings import Settings
from nlu.service import NluService
from scrm.db import SessionFactory

settings_key = web.AppKey("settings", Settings)
db_engine_key = web.AppKey("db_engine", AsyncEngine)
db_key = web.AppKey("db", SessionFactory)
http_key = web.AppKey("http", aiohttp.ClientSession)
redis_key: web.AppKey[Redis | None] = web.AppKey("redis")  # None when embedded (no Redis)
bus_key = web.AppKey("bus", LocalBus)
nlu_key = web.AppKey("nlu", NluService)
engine_key = web.AppKey("engine", Engine)
followups_key = web.AppKey("followups", Followups)
outbox_key = web.AppKey("outbox", Outbox)
scheduler_key = web.AppKey("scheduler", AsyncIOScheduler)
tasks_key: web.AppKey[set[asyncio.Task[Any]]] = web.AppKey("tasks")  # owned background tasks


T = TypeVar("T")


def spawn(app: web.Application, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
    """A background task owned by the app (awaited or cancelled at shutdown, see `bot.app.background`)."""
    task = asyncio.create_task(coro, name=name)
    tasks: set[asyncio.Task[Any]] = app[tasks_key]
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return task
