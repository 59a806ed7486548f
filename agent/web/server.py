"""The HTTP server: pages, static files, the JSON API and the live stream, in the agent's event loop.

`WebServer` has `start()` / `stop()` (tests start it directly on 127.0.0.1 and a free port);
`run_web(core, feed, stop)` is the part `agent.app` runs until `stop` is set.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from agent.clock import Clock, system_clock
from agent.core import Core
from agent.errors import KioskError
from agent.store.feed import EventFeed
from agent.web.api import Api, IdentitySource, json_response
from agent.web.auth import CounterAuth, TooManyAttempts
from agent.web.feedback import FeedbackDesk
from agent.web.guard import RateLimited, RequestPolicy, TokenBuckets
from agent.web.live import RETRY_AFTER_S, LiveBusy, LiveHub
from agent.web.metrics import AnnouncerStats, WebMetrics

logger = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
SHUTDOWN_TIMEOUT_S = 3.0
# Everything the screens load comes from this server; no inline script can run, so text that
# slipped through unescaped still could not execute.
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
OFFICER_PREFIX = "/officer"


def broker_source(url: str | None) -> str | None:
    """The CSP source for the officer console's MQTT-over-WebSockets broker: scheme://host[:port], no
    credentials or path, so exactly that broker (and no other, whatever a crafted link names) is reachable."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname or any(c in url for c in " ;,'\""):
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def officer_csp(broker_url: str | None) -> str:
    source = broker_source(broker_url)
    # mqtt.js keeps its keepalive timers in a blob: worker, which background tabs do not throttle; a
    # blob URL can only come from script this server sent (script-src 'self').
    csp = CSP + "; worker-src 'self' blob:"
    return csp if source is None else csp.replace("connect-src 'self'", f"connect-src 'self' {source}")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Other parts' routes (the printer's reprint) check counter PINs with the same lockout count.
COUNTER_AUTH = web.AppKey("counter_auth", CounterAuth)

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
               413: "body_too_large", 415: "unsupported_media_type"}
_HTTP_SENTENCES = {404: "Không tìm thấy địa chỉ này (not found).",
                   405: "Phương thức không được hỗ trợ ở địa chỉ này (method not allowed).",
                   413: "Dữ liệu gửi lên quá lớn (request body too large)."}


def _error(status: int, message: str, code: str) -> web.Response:
    return json_response({"error": message, "code": code}, status=status)


def build_app(core: Core, feed: EventFeed, *, announcer: AnnouncerStats | None = None,
              clock: Clock = system_clock, identities: IdentitySource | None = None,
              extra_routes: Sequence[web.RouteDef] = (), metrics: WebMetrics | None = None) -> web.Application:
    """The whole HTTP app. `extra_routes` mounts other parts' pages and APIs (the video calls); `metrics`
    carries the daemon's labels and device/sync snapshot into `/metrics`."""
    settings = core.settings.web
    hub = LiveHub(core, feed, settings.board_last_calls, settings.live_max_clients, settings.live_max_per_client)
    auth = CounterAuth(core.settings.counter_pins(), core.settings.data_dir() / "counter-logins.json",
                       settings.counter_session_minutes)
    desk = FeedbackDesk(core.queue, settings.rating_levels, clock)
    metrics = metrics if metrics is not None else WebMetrics()
    calls_enabled = any(getattr(r, "path", "") == "/api/calls" for r in extra_routes)
    console_csp = officer_csp(core.settings.call.officer_broker_url)
    policy = RequestPolicy(settings.allowed_hosts, settings.screen_addresses, core.settings.screen_token())
    buckets = TokenBuckets(settings.resident_burst, settings.resident_per_minute)
    api = Api(core, hub, auth, desk, metrics, announcer, identities, calls_enabled, policy, buckets)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
        try:
            policy.check_host(request)  # every request: a rebinding page may not even read the queue
            policy.check_origin(request)
            response = await handler(request)
        except LiveBusy as exc:
            response = _error(exc.http_status, exc.message, exc.code)
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
        except TooManyAttempts as exc:
            response = _error(exc.http_status, exc.message, exc.code)
            response.headers["Retry-After"] = str(exc.retry_after)
        except RateLimited as exc:
            response = _error(exc.http_status, exc.message, exc.code)
            response.headers["Retry-After"] = str(exc.retry_after)
        except KioskError as exc:
            response = _error(exc.http_status, exc.message, exc.code)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = _error(exc.status, _HTTP_SENTENCES.get(exc.status, exc.reason),
                              _HTTP_CODES.get(exc.status, "http_error"))
        metrics.count(request.method, route, response.status)
        if not response.prepared:
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            # Only the officer console talks to the broker (MQTT over WebSockets) from the browser.
            response.headers.setdefault("Content-Security-Policy",
                                        console_csp if request.path.startswith(OFFICER_PREFIX) else CSP)
            response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    app = web.Application(middlewares=[guard], client_max_size=settings.max_body_bytes)
    app[COUNTER_AUTH] = auth
    app.add_routes(api.routes())
    app.add_routes(extra_routes)
    if not any(getattr(r, "path", "").startswith("/api/printer") for r in extra_routes):
        from agent.printing.web import printer_routes  # here: agent.printing.web imports this module

        app.add_routes(printer_routes(core, None, clock))  # "printing is off", so screens need not guess
    app.add_routes([
        web.get("/", _page("kiosk.html")),
        web.get("/board", _page("board.html")),
        web.get("/counter/{n:\\d{1,3}}", _page("counter.html")),
        web.get("/favicon.ico", _favicon),
        web.static("/static", STATIC, append_version=False),
    ])

    async def on_shutdown(_app: web.Application) -> None:
        hub.close()  # live streams end now instead of holding the shutdown

    app.on_shutdown.append(on_shutdown)
    return app


def _page(name: str) -> Handler:
    path = STATIC / name

    async def page(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    return page


async def _favicon(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/static/favicon.svg")


class WebServer:
    """The screens and API on `host:port` (settings by default); `port` 0 picks a free port."""

    def __init__(self, core: Core, feed: EventFeed, *, host: str | None = None, port: int | None = None,
                 announcer: AnnouncerStats | None = None, clock: Clock = system_clock,
                 identities: IdentitySource | None = None, extra_routes: Sequence[web.RouteDef] = (),
                 metrics: WebMetrics | None = None) -> None:
        self.core = core
        self.metrics = metrics
        self.feed = feed
        self.host = host if host is not None else core.settings.web.host
        self.port = port if port is not None else core.settings.web.port
        self.announcer = announcer
        self.clock = clock
        self.identities = identities
        self.extra_routes = extra_routes
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        app = build_app(self.core, self.feed, announcer=self.announcer, clock=self.clock,
                        identities=self.identities, extra_routes=self.extra_routes, metrics=self.metrics)
        # Cancel a handler when its client goes away: a closed live stream frees its place at once.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        for address in runner.addresses:
            if isinstance(address, tuple):
                self.port = int(address[1])
                break
        logger.info("screens and API on %s (kiosk /, board /board, counters /counter/N)", self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()


async def run_web(core: Core, feed: EventFeed, stop: asyncio.Event, *,
                  announcer: AnnouncerStats | None = None, clock: Clock = system_clock) -> None:
    """Serve until `stop` is set (an agent part for `agent.app`)."""
    server = WebServer(core, feed, announcer=announcer, clock=clock)
    await server.start()
    try:
        await stop.wait()
    finally:
        await server.stop()
