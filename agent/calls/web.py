"""HTTP routes of calls, for the web server to mount: the kiosk's call API and the officer console.

    POST   /api/calls                    {"service"?, "ticket"?} → 201 {"call", "token", "state", ...}
    GET    /api/calls/{id}               → the call's state (never the token)
    DELETE /api/calls/{id}               → hang up; the final state                       [token]
    POST   /api/calls/{id}/callback      {"ticket"?, "service"?} → 201, after a missed call [token]
    GET    /api/calls/{id}/video.mjpeg   the officer's video for the kiosk screen         [token]

[token]: the per-call secret of the POST response, as header ``X-Call-Token`` or query ``?token=``
(an ``<img src>`` cannot send headers). Without it: 401 ``call_token_invalid``, and the call goes on.
    GET    /officer                      the officer console (static page, MQTT over WebSockets)
    GET    /officer/config.json          topic root, ward, broker URL, ICE servers for the console
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from agent.calls import mjpeg
from agent.calls.service import CallService
from agent.errors import InvalidInput, KioskError
from agent.settings import Settings

logger = logging.getLogger(__name__)

OFFICER_DIR = Path(__file__).resolve().parent / "officer"
_MAX_BODY = 4096


def _error(exc: KioskError) -> web.Response:
    return web.json_response({"error": exc.message, "code": exc.code}, status=exc.http_status)


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    raw = await request.content.read(_MAX_BODY + 1)
    if len(raw) > _MAX_BODY:
        raise InvalidInput("request body too large")
    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise InvalidInput("request body is not JSON") from exc
    if not isinstance(body, dict):
        raise InvalidInput("request body must be a JSON object")
    return body


def _opt_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{key} must be a string")
    return value


def request_token(request: web.Request) -> str | None:
    """The per-call token a request presents (header first, then the query for ``<img src>``)."""
    return request.headers.get("X-Call-Token") or request.query.get("token")


def call_routes(calls: CallService, *, mjpeg_fps: float = 15.0) -> list[web.RouteDef]:
    """The kiosk's call API (its JSON errors follow the rest of the API)."""

    async def start(request: web.Request) -> web.Response:
        try:
            body = await _body(request)
            call_id = await calls.start_call(_opt_str(body, "service"), _opt_str(body, "ticket"))
            return web.json_response({**(calls.state(call_id) or {}), "token": calls.token(call_id)},
                                     status=201, headers={"Cache-Control": "no-store"})
        except KioskError as exc:
            return _error(exc)

    async def show(request: web.Request) -> web.Response:
        try:
            return web.json_response(calls.state(request.match_info["id"]))
        except KioskError as exc:
            return _error(exc)

    async def hangup(request: web.Request) -> web.Response:
        try:
            calls.check_token(request.match_info["id"], request_token(request))
            return web.json_response(await calls.hangup(request.match_info["id"]))
        except KioskError as exc:
            return _error(exc)

    async def callback(request: web.Request) -> web.Response:
        try:
            body = await _body(request)
            call_id = request.match_info["id"]
            calls.check_token(call_id, request_token(request))
            calls.leave_callback(call_id, ticket=_opt_str(body, "ticket"), service=_opt_str(body, "service"))
            return web.json_response(calls.state(call_id), status=201)
        except KioskError as exc:
            return _error(exc)

    return [
        web.post("/api/calls", start),
        web.get("/api/calls/{id}", show),
        web.delete("/api/calls/{id}", hangup),
        web.post("/api/calls/{id}/callback", callback),
        web.get("/api/calls/{id}/video.mjpeg", mjpeg.handler(calls, max_fps=mjpeg_fps)),
    ]


def officer_config(settings: Settings) -> dict[str, Any]:
    """What the console needs to know; the broker credentials are typed in by the officer.

    No TURN credential here (anyone on the LAN may fetch this): the kiosk sends the call's ICE
    servers with their credentials inside the offer, to the officer who accepted.
    """
    servers = [{"urls": list(server.urls)} for server in settings.call.ice_servers]
    return {
        "root": settings.mqtt.root,
        "wards": [settings.device.ward],
        "brokerUrl": settings.call.officer_broker_url,
        "iceServers": servers,
        "iceTransportPolicy": settings.call.ice_transport_policy,
        "heartbeatInterval": settings.call.heartbeat_interval_seconds,
        "heartbeatTimeout": settings.call.heartbeat_timeout_seconds,
    }


def officer_routes(settings: Settings) -> list[web.RouteDef]:
    """The officer console at /officer, served from agent/calls/officer/ (mqtt.js vendored, no CDN)."""
    files = {
        "officer.js": ("application/javascript", OFFICER_DIR / "officer.js"),
        "officer.css": ("text/css", OFFICER_DIR / "officer.css"),
        "vendor/mqtt.min.js": ("application/javascript", OFFICER_DIR / "vendor" / "mqtt.min.js"),
    }
    headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}

    async def page(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(OFFICER_DIR / "index.html", headers={**headers, "Content-Type": "text/html"})

    async def asset(request: web.Request) -> web.StreamResponse:
        found = files.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        content_type, path = found
        return web.FileResponse(path, headers={**headers, "Content-Type": f"{content_type}; charset=utf-8"})

    async def config(_request: web.Request) -> web.Response:
        return web.json_response(officer_config(settings), headers={"Cache-Control": "no-store"})

    return [
        web.get("/officer", page),
        web.get("/officer/config.json", config),
        web.get("/officer/{name:.+}", asset),
    ]
