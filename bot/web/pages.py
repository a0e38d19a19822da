"""HTML pages: the customer chat widget, staff login, the agent console and the admin pages.

Pages are static shells; every datum they show comes from the API, which checks the role on
each call (a page hides what a role cannot do, the API refuses it).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from aiohttp import web

from bot.web.auth import current_session

STATIC = Path(__file__).parent / "static"
NO_CACHE = {"Cache-Control": "no-cache", "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin"}
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; base-uri 'none'; form-action 'self'; object-src 'none'; "
)
STAFF_CSP = _CSP + "frame-ancestors 'none'"
WEBCHAT_CSP = _CSP + "frame-ancestors *"  # the widget is meant to be framed by the brand's sites (embed.js)


def _page(*parts: str, staff: bool = False) -> web.FileResponse:
    headers = dict(NO_CACHE)
    if staff:
        headers["Content-Security-Policy"] = STAFF_CSP
    return web.FileResponse(STATIC.joinpath(*parts), headers=headers)


async def webchat_page(request: web.Request) -> web.FileResponse:
    headers = {"Cache-Control": "no-cache", "Referrer-Policy": "same-origin", "Content-Security-Policy": WEBCHAT_CSP}
    return web.FileResponse(STATIC / "webchat" / "index.html", headers=headers)


async def login_page(request: web.Request) -> web.FileResponse:
    return _page("admin", "login.html", staff=True)


async def _signed_in_or_redirect(request: web.Request) -> None:
    if await current_session(request) is None:
        raise web.HTTPFound("/login?" + urlencode({"next": request.path}))


async def console_page(request: web.Request) -> web.FileResponse:
    await _signed_in_or_redirect(request)
    return _page("console", "index.html", staff=True)


async def admin_page(request: web.Request) -> web.FileResponse:
    await _signed_in_or_redirect(request)
    return _page("admin", "index.html", staff=True)


def setup(app: web.Application) -> None:
    app.router.add_get("/", webchat_page)
    app.router.add_get("/login", login_page)
    app.router.add_get("/console", console_page)
    app.router.add_get("/admin", admin_page)
    app.router.add_get("/admin/{section:[a-z\\-]+}", admin_page)
    app.router.add_get("/admin/{section:[a-z\\-]+}/{item:\\d+}", admin_page)  # one ticket, one customer
