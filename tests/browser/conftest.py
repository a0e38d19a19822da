"""Browser tests: a real Huike server on a loopback port, driven by Debian's headless Chromium."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.app import create_app
from config.settings import Settings
from scrm.db import SessionFactory

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
TIMEOUT_MS = 20_000

pytestmark = pytest.mark.browser


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("/usr/bin/chromium is missing (CI=true: browser tests are required; run `make system-deps`)")
    pytest.skip("/usr/bin/chromium is missing: install it with `make system-deps` (apt chromium + fonts-noto-cjk)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    app: web.Application

    @property
    def db(self) -> SessionFactory:
        from bot.keys import db_key

        return self.app[db_key]


@pytest.fixture
async def live_server(settings: Settings, seeded_faq: int) -> AsyncIterator[LiveServer]:
    """The whole app (engine, NLU, outbox, bus) served on 127.0.0.1:<free port> over the test database."""
    port = _free_port()
    app = create_app(settings.model_copy(update={"host": "127.0.0.1", "port": port}))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", app)
    finally:
        await runner.cleanup()


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
    _require_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def new_page(chromium: Any) -> AsyncIterator[Any]:
    """`await new_page()`: a page in a fresh browser context (own cookies: one person)."""
    contexts: list[Any] = []
    script_errors: list[str] = []

    async def make(width: int = 1366, height: int = 800) -> Any:
        context = await chromium.new_context(viewport={"width": width, "height": height}, locale="zh-CN")
        context.set_default_timeout(TIMEOUT_MS)
        await context.clock.install(time=datetime.now(UTC))  # the suite's pinned clock; it runs on from there
        contexts.append(context)
        page = await context.new_page()
        page.on("dialog", lambda d: d.accept())
        page.on("pageerror", lambda exc: script_errors.append(f"{page.url}: {exc}"))
        return page

    yield make
    for context in contexts:
        await context.close()
    assert script_errors == [], "JavaScript errors on the pages"


async def screenshot(page: Any, name: str) -> Path:
    """Saved for a person to look at (var/screenshots is not committed)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def staff_login(page: Any, server: LiveServer, username: str, password: str) -> None:
    await page.goto(server.url + "/login")
    await page.fill("#username", username)
    await page.fill("#password", password)
    await page.click("#login-submit")
