"""`kiosk central serve`: central's web application (aiohttp), its sessions and the summariser task.

Pages are rendered on the server; every database call runs in a worker thread. Routes and roles are
listed in docs/integration.md ("Central web"); each handler says which roles may use it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from aiohttp import web

from central.db import Db
from central.errors import CentralError, Forbidden
from central.schema import ensure_schema
from central.sessions import Limits, Logins, Session
from central.summarizer import LOCAL, Summarizer
from central.web import html

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
SESSION_COOKIE = "central_session"
LOGIN_COOKIE = "central_login_csrf"
MAX_QUERY = 512  # longer query strings are refused before any parsing


@dataclass(frozen=True)
class WebSettings:
    db: str
    secure_cookies: bool = False  # set behind TLS: cookies then travel over HTTPS only
    service_level_minutes: tuple[int, ...] = (15, 30)
    summarise_every: float = 2.0
    limits: Limits = field(default_factory=Limits)
    today: Callable[[], date] = field(default=lambda: datetime.now(LOCAL).date())  # the local day; tests fix it
    broker: str | None = None  # mqtt://…: the fleet watcher subscribes to kiosks' status/telemetry and commands them
    fleet_root: str = "wards"


@dataclass
class Central:
    settings: WebSettings
    db: Db
    logins: Logins


CENTRAL = web.AppKey("central", Central)
SESSION = web.RequestKey("session", object)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def central_of(request: web.Request) -> Central:
    return request.app[CENTRAL]


async def current(request: web.Request) -> Session | None:
    if SESSION not in request:
        token = request.cookies.get(SESSION_COOKIE)
        request[SESSION] = await asyncio.to_thread(central_of(request).logins.session, token)
    session = request[SESSION]
    return session if isinstance(session, Session) else None


async def require(request: web.Request, allowed: tuple[str, ...] = ("admin", "ops", "officer", "leader"),
                  why: str = "") -> Session:
    """The request's session with one of the roles, else a redirect to the login page or a 403."""
    session = await current(request)
    if session is None:
        raise web.HTTPSeeOther("/login")
    if session.user.role not in allowed:
        raise Forbidden(why or "Tài khoản của bạn không được xem trang này.")
    return session


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def set_cookie(response: web.StreamResponse, request: web.Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="Strict", path="/",
                        secure=central_of(request).settings.secure_cookies)


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse oversized queries, turn central's errors into a readable page, add security headers."""
    try:
        if len(request.query_string) > MAX_QUERY:
            raise CentralError("Bộ lọc quá dài.", code="too_long")
        response = await handler(request)
    except CentralError as exc:
        session = await current(request) if request.path not in ("/login",) else None
        body = html.error_page(exc.http_status, exc.message, session.user if session else None,
                               session.csrf if session else "")
        if request.path.startswith("/api/"):
            response = web.json_response({"error": exc.message, "code": exc.code}, status=exc.http_status)
        else:
            response = web.Response(text=body, content_type="text/html", status=exc.http_status)
    response.headers["Content-Security-Policy"] = "default-src 'self'; style-src 'self'; frame-ancestors 'none'"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


async def summarise_forever(app: web.Application) -> None:
    """Keep the KPI summaries following the ingest; its own connection so pages are not held up."""
    central = app[CENTRAL]
    db = await asyncio.to_thread(Db, central.settings.db)
    summ = Summarizer(db)
    try:
        while True:
            try:
                folded = await asyncio.to_thread(summ.run_once)
                if folded:
                    logger.info("summaries: %d events folded in", folded)
            except CentralError:
                logger.exception("summaries: database error, retrying")
            await asyncio.sleep(central.settings.summarise_every)
    finally:
        await asyncio.to_thread(db.close)


async def _background(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(summarise_forever(app), name="central-summariser")
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def build_app(settings: WebSettings) -> web.Application:
    """The application on an opened, migrated database (blocking: call before the loop serves)."""
    from central.web import fleet_views, views

    db = Db(settings.db)
    ensure_schema(db)
    app = web.Application(middlewares=[guard], client_max_size=64 * 1024)
    app[CENTRAL] = Central(settings, db, Logins(db, settings.limits))
    views.add_routes(app)
    fleet_views.install(app, settings.broker, settings.fleet_root)
    app.router.add_static("/static", STATIC, append_version=False)
    app.cleanup_ctx.append(_background)

    async def close(_: web.Application) -> None:
        await asyncio.to_thread(db.close)

    app.on_cleanup.append(close)
    return app


def new_login_token() -> str:
    return secrets.token_urlsafe(24)


def run_app(app: web.Application, host: str, port: int) -> None:
    """Serve until SIGTERM/SIGINT (aiohttp's runner installs the handlers)."""
    web.run_app(app, host=host, port=port, print=None, access_log=None, handle_signals=True)
