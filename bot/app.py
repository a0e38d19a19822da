"""`create_app(settings)`: wiring only — one cleanup_ctx per resource, then the routes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import structlog
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot import logs
from bot.bus import LocalBus, RedisBus
from bot.channels import webchat, wechat_oa, wecom
from bot.engine import Engine, Services
from bot.engine.followups import Followups
from bot.engine.handlers import default_handlers, default_observers
from bot.engine.services import FaqCatalog
from bot.faq_sync import FAQ_CHANGED, FAQ_SERVING, load_faq_docs, worker_id
from bot.keys import (
    bus_key,
    db_engine_key,
    db_key,
    engine_key,
    followups_key,
    http_key,
    nlu_key,
    outbox_key,
    redis_key,
    scheduler_key,
    settings_key,
    tasks_key,
)
from bot.leader import Leadership, leader_key
from bot.outbox import Outbox
from bot.web import admin, auth_routes, care_views, console, customer_views, gaps, health, pages
from bot.web import insight as insight_web
from bot.web import scrm as scrm_web
from bot.web import tickets as tickets_web
from bot.web.errors import errors_as_json, request_context, security_headers
from bot.web.ratelimit import Counters, counters_key
from config.settings import Settings
from nlu.service import NluService
from scrm.db import make_engine, make_session_factory

log = structlog.get_logger(__name__)
STATIC = Path(__file__).parent / "web" / "static"
SHUTDOWN_GRACE = 10.0
# A run delayed by a busy loop (NLU training at start, a long GC) still happens, once, instead of being dropped.
JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 300}


def create_app(settings: Settings) -> web.Application:
    logs.configure(settings.log_level, settings.log_json)
    app = web.Application(middlewares=[request_context, errors_as_json], client_max_size=settings.max_body_bytes)
    app[settings_key] = settings
    app[tasks_key] = set()
    app[outbox_key] = Outbox()  # channels register their deliverers in setup()
    app[scheduler_key] = AsyncIOScheduler(timezone="Asia/Shanghai", job_defaults=JOB_DEFAULTS)  # jobs: in setup()
    app.on_response_prepare.append(security_headers)
    app.cleanup_ctx.extend(
        [database, http_client, redis_and_bus, nlu_service, followups, engine, outbox, scheduler, background]
    )
    health.setup(app)
    auth_routes.setup(app)
    webchat.setup(app)
    console.setup(app)
    admin.setup(app)
    gaps.setup(app)
    wechat_oa.setup(app)
    wecom.setup(app)  # also 微信客服 (wechat_kf)
    tickets_web.setup(app)
    scrm_web.setup(app)
    insight_web.setup(app)
    customer_views.setup(app)
    care_views.setup(app)
    pages.setup(app)
    app.router.add_static("/static", STATIC, append_version=True)
    return app


async def database(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    app[db_engine_key] = make_engine(settings.database_url, pool_timeout=settings.db_pool_timeout)
    app[db_key] = make_session_factory(app[db_engine_key])
    app[outbox_key].sessions = app[db_key]
    yield
    await app[db_engine_key].dispose()


async def http_client(app: web.Application) -> AsyncIterator[None]:
    timeout = aiohttp.ClientTimeout(total=10, connect=3)
    async with aiohttp.ClientSession(timeout=timeout, raise_for_status=False) as session:
        app[http_key] = session
        yield


async def redis_and_bus(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    if settings.redis_url:
        from redis.asyncio import Redis

        redis = Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=10)
        app[redis_key] = redis
        app[bus_key] = RedisBus(redis, f"{settings.redis_namespace}:events")
    else:
        app[redis_key] = None
        app[bus_key] = LocalBus()
    app[counters_key] = Counters(app[redis_key], settings.redis_namespace)
    await app[bus_key].start()
    yield
    await app[bus_key].close()
    redis = app[redis_key]
    if redis is not None:
        await redis.aclose()


async def nlu_service(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    service = NluService(
        model_path=settings.model_path,
        backend=settings.nlu_backend,
        rasa_url=settings.rasa_url,
        rasa_timeout=settings.rasa_timeout,
    )
    docs, pairs = await load_faq_docs(app[db_key])
    await service.start(docs, pairs)
    app[nlu_key] = service
    yield
    await service.close()


async def followups(app: web.Application) -> AsyncIterator[None]:
    app[followups_key] = Followups(app[db_key])
    await app[followups_key].start()
    yield
    await app[followups_key].close()


async def engine(app: web.Application) -> AsyncIterator[None]:
    docs, _pairs = await load_faq_docs(app[db_key])
    services = Services(
        settings=app[settings_key],
        nlu=app[nlu_key],
        bus=app[bus_key],
        faq=FaqCatalog(docs),
        followups=app[followups_key],
        stored_is_delivered=app[outbox_key].stored_is_delivered,
        hold_seconds=app[outbox_key].hold_seconds,
    )
    app[engine_key] = Engine(app[db_key], services, default_handlers(), default_observers())
    yield


async def outbox(app: web.Application) -> AsyncIterator[None]:
    await app[outbox_key].start()
    yield
    await app[outbox_key].close()


async def scheduler(app: web.Application) -> AsyncIterator[None]:
    sched = app[scheduler_key]
    sched.add_job(app[engine_key].recover, "interval", seconds=30, kwargs={"older_than": timedelta(seconds=30)},
                  id="recover-unanswered", coalesce=True, max_instances=1)
    settings = app[settings_key]
    every = max(2.0, settings.presence_grace_seconds / 3)
    sched.add_job(console.expire_presence, "interval", seconds=every, args=[app], id="expire-presence",
                  coalesce=True, max_instances=1)
    leadership = app[leader_key] = Leadership(
        app[redis_key], f"{settings.redis_namespace}:scheduler:leader", ttl=settings.scheduler_lease
    )
    await leadership.start()
    leadership.install(sched)  # jobs run on one worker only
    sched.start()
    yield
    running = [f for ex in sched._executors.values() for f in getattr(ex, "_pending_futures", ())]
    sched.shutdown(wait=False)  # cancels running jobs ...
    if running:  # ... which must finish rolling back before the database is closed
        await asyncio.wait(running, timeout=SHUTDOWN_GRACE)
    await leadership.close()


async def background(app: web.Application) -> AsyncIterator[None]:
    """App-owned tasks: answer what a crash left unanswered, follow FAQ changes from any worker."""
    tasks = app[tasks_key]
    follower = asyncio.create_task(_follow_faq_changes(app), name="faq-follow")
    tasks.add(follower)
    tasks.add(asyncio.create_task(app[engine_key].recover(timedelta(seconds=0)), name="recover-at-start"))
    yield
    follower.cancel()  # it never ends by itself: don't wait SHUTDOWN_GRACE for it
    if tasks:
        _done, pending = await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _follow_faq_changes(app: web.Application) -> None:
    async with app[bus_key].subscribe() as queue:
        while True:
            topic, data = await queue.get()
            if topic == FAQ_CHANGED:
                await refresh_faq(app)
                await app[bus_key].publish(FAQ_SERVING, {"version": data.get("version"), "worker": worker_id()})


async def refresh_faq(app: web.Application) -> None:
    """Reload FAQ answers and retrain the NLU in the background; in-flight turns keep the old model."""
    docs, pairs = await load_faq_docs(app[db_key])
    app[engine_key].services.faq.replace(docs)
    await app[nlu_key].retrain(docs, pairs)
    log.info("faq_reloaded", entries=len(docs))
