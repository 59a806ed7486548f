"""The JSON API of ARCHITECTURE.md ("Local HTTP API"): tickets, the queue, counters, ratings, feedback.

Every refusal is `{"error": <sentence>, "code": <machine code>}` with a 4xx status (see `server`).
Counter actions need the counter's PIN or token (`Authorization: Bearer …` or `X-Counter-Pin`).
"""

from __future__ import annotations

import json
import logging
import re
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import unquote

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from agent import __version__
from agent.checkin.codes import ticket_payload
from agent.checkin.service import Identity
from agent.core import Core
from agent.errors import InvalidInput, KioskError, NotFound
from agent.queue.service import CounterResult
from agent.web.auth import CounterAuth, presented_pin
from agent.web.feedback import FEEDBACK_KINDS, RATING_LABELS, FeedbackDesk
from agent.web.guard import RequestPolicy, TokenBuckets, client_address, require_json
from agent.web.live import LiveHub, announcement
from agent.web.metrics import AnnouncerStats, WebMetrics
from agent.web.qr import qr_svg
from agent.web.screen_view import board_state

logger = logging.getLogger(__name__)

MAX_OFFICER_CHARS = 60
_TICKET_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_SERVED_BY_MEMORY = 2000


def json_response(data: Any, status: int = 200) -> web.Response:
    """JSON with Vietnamese left readable (UTF-8), not \\u-escaped."""
    return web.json_response(data, status=status, dumps=lambda v: json.dumps(v, ensure_ascii=False))


class IdentitySource(Protocol):
    """Who the kiosk camera identified just now (agent.checkin.service.CheckinService)."""

    def claim_identity(self) -> Identity | None: ...

    def consume_identity(self, session: str | None) -> Identity | None: ...

    def end_identity(self, session: str) -> bool: ...


class CallsUnavailable(KioskError):
    code = "calls_unavailable"
    http_status = 503


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=4000)


class TicketBody(_Body):
    service: str = Field(min_length=1, max_length=40)
    priority: str | None = Field(None, max_length=32)
    checkin_session: str | None = Field(None, max_length=64)  # the ID-card session the screen holds


class TransferBody(_Body):
    service: str = Field(min_length=1, max_length=40)


class CallBody(_Body):
    ticket: str = Field(min_length=1, max_length=64)
    reason: str = Field(max_length=200)


class RatingBody(_Body):
    score: StrictInt
    comment: str | None = None


class FeedbackBody(_Body):
    kind: str = "phan-anh"
    text: str
    phone: str | None = Field(None, max_length=30)
    ticket: str | None = Field(None, max_length=64)


class LoginBody(_Body):
    pin: str = Field(min_length=1, max_length=200)
    officer: str | None = Field(None, max_length=MAX_OFFICER_CHARS)


class ReturnBody(_Body):
    ticket: str = Field(min_length=1, max_length=64)


M = TypeVar("M", bound=_Body)


class BadJson(KioskError):
    code = "bad_json"
    http_status = 400


async def read_body(request: web.Request, model: type[M]) -> M:
    raw = await request.read()  # bounded by the application's client_max_size
    try:
        data = json.loads(raw or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput("Dữ liệu gửi lên không phải JSON hợp lệ.", code="bad_json") from exc
    except RecursionError as exc:  # thousands of nested brackets: no body of ours nests at all
        raise BadJson("Dữ liệu JSON lồng nhau quá sâu (JSON nested too deeply).") from exc
    if not isinstance(data, dict):
        raise InvalidInput("Dữ liệu gửi lên phải là một đối tượng JSON.", code="bad_json")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(f"Dữ liệu không hợp lệ ({problems}).", code="invalid_input") from exc


def _counter(request: web.Request) -> int:
    raw = request.match_info["n"]
    if not raw.isdigit() or len(raw) > 3:
        raise NotFound(f"Không có quầy số {raw} (unknown counter)", code="unknown_counter")
    return int(raw)


class Api:
    def __init__(self, core: Core, hub: LiveHub, auth: CounterAuth, desk: FeedbackDesk, metrics: WebMetrics,
                 announcer: AnnouncerStats | None = None, identities: IdentitySource | None = None,
                 calls_enabled: bool = False, policy: RequestPolicy | None = None,
                 buckets: TokenBuckets | None = None) -> None:
        self.core = core
        web_settings = core.settings.web
        self.policy = policy or RequestPolicy(web_settings.allowed_hosts, web_settings.screen_addresses,
                                              core.settings.screen_token())
        self.buckets = buckets or TokenBuckets(web_settings.resident_burst, web_settings.resident_per_minute)
        self.hub = hub
        self.auth = auth
        self.desk = desk
        self.metrics = metrics
        self.announcer = announcer
        self.identities = identities
        self.calls_enabled = calls_enabled
        self.officer_at: dict[int, str] = {}  # counter → officer name given on its console
        self.served_by: OrderedDict[str, str] = OrderedDict()  # ticket id → officer (recent tickets)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/services", self.services),
            web.post("/api/tickets", self.take),
            web.get("/api/tickets/{id}/qr.svg", self.ticket_qr),
            web.post("/api/tickets/{id}/rating", self.rate),
            web.get("/api/queue", self.queue),
            web.get("/api/counters/{n}", self.counter_state),
            web.post("/api/counters/{n}/login", self.counter_login),
            web.post("/api/counters/{n}/logout", self.counter_logout),
            web.post("/api/counters/{n}/{action}", self.counter_action),
            web.post("/api/feedback", self.feedback),
            *([] if self.calls_enabled else [web.post("/api/calls", self.calls_unavailable),
                                             web.delete("/api/calls/{id}", self.calls_unavailable)]),
            web.post("/api/checkin/session", self.claim_checkin),
            web.delete("/api/checkin/session/{session}", self.end_checkin),
            web.get("/api/live", self.hub.handle),
            web.get("/healthz", self.health),
            web.get("/metrics", self.prometheus),
        ]

    def _resident(self, request: web.Request) -> None:
        """Tickets, ratings and feedback: the kiosk screen only, JSON only, a few per client."""
        self.policy.require_screen(request)
        require_json(request)
        self.buckets.take(client_address(request))

    # Kiosk -----------------------------------------------------------------------------------------
    async def services(self, request: web.Request) -> web.Response:
        core = self.core
        cat, queue, now = core.catalogue, core.queue, core.queue.clock()
        groups = []
        for group in cat.groups:
            services = []
            for service in group.services:
                est = queue.estimate(service.code)
                services.append({"code": service.code, "name": service.name, "prefix": service.prefix,
                                 "counters": list(service.counters), "waiting": est["waiting"],
                                 "estimated_wait_minutes": est["estimated_wait_minutes"],
                                 "open": cat.is_open(service, now, queue.tz),
                                 "hours_today": cat.hours_of(service).today_text(now.astimezone(queue.tz))})
            groups.append({"code": group.code, "name": group.name, "services": services})
        web_settings = core.settings.web
        return json_response({
            "office": {"name": cat.office.name, "short_name": cat.office.short_name},
            "groups": groups,
            "priority_classes": [{"code": p.code, "name": p.name} for p in cat.priority_classes if p.kiosk],
            "counters": [{"number": c.number, "name": c.name} for c in cat.counters],
            "rating": {"levels": web_settings.rating_levels, "labels": RATING_LABELS[web_settings.rating_levels]},
            "feedback_kinds": FEEDBACK_KINDS,
            "idle_reset_seconds": web_settings.idle_reset_seconds,
            "enforce_hours": core.settings.queue.enforce_hours,
        })

    async def take(self, request: web.Request) -> web.Response:
        self._resident(request)
        body = await read_body(request, TicketBody)
        if body.priority and not self.core.catalogue.priority(body.priority).kiosk:
            # Appointment-only classes come with a valid appointment QR (check-in), never from a tap.
            raise InvalidInput("Diện ưu tiên này chỉ áp dụng khi quét mã lịch hẹn.", code="priority_not_offered")
        # A resident who showed their ID card gets this ticket linked to the card's keyed hash (never the
        # card itself) only when the ticket carries their screen session; any ticket ends the session.
        identity = self.identities.consume_identity(body.checkin_session) if self.identities is not None else None
        issued = self.core.queue.take(body.service, body.priority or None, source="kiosk",
                                      resident=identity.resident_ref if identity else None)
        data = issued.public()
        data["qr"] = f"/api/tickets/{issued.ticket.id}/qr.svg"
        return json_response(data, status=201)

    async def claim_checkin(self, request: web.Request) -> web.Response:
        """The kiosk screen, told by the live stream that a card was read, claims the greeting once (only the
        screen may: another LAN client taking it would leave the resident without greeting or link)."""
        self.policy.require_screen(request)
        identity = self.identities.claim_identity() if self.identities is not None else None
        if identity is None:
            raise NotFound("Không có phiên thẻ căn cước nào đang chờ.", code="no_checkin_session")
        return json_response(identity.public())

    async def end_checkin(self, request: web.Request) -> web.Response:
        self.policy.require_screen(request)
        if self.identities is not None:
            self.identities.end_identity(request.match_info["session"][:64])
        return web.Response(status=204)

    async def ticket_qr(self, request: web.Request) -> web.Response:
        ticket = self.core.queue.get(request.match_info["id"])
        svg = qr_svg(ticket_payload(ticket.id, self.core.settings.web.central_public_url))
        return web.Response(body=svg, content_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})

    async def rate(self, request: web.Request) -> web.Response:
        self._resident(request)
        body = await read_body(request, RatingBody)
        ref = request.match_info["id"]
        if not _TICKET_ID.match(ref):
            # A number such as A012 is guessable: whoever types it first would take the resident's rating.
            raise NotFound("Xin đánh giá bằng mã trên phiếu (rate by ticket id).", code="rate_by_id")
        ticket = self.core.queue.get(ref)
        officer = self.served_by.get(ticket.id) or (self.officer_at.get(ticket.counter) if ticket.counter else None)
        rating = self.desk.rate(ticket.id, body.score, body.comment, officer)
        return json_response(rating.public(), status=201)

    async def feedback(self, request: web.Request) -> web.Response:
        self._resident(request)
        body = await read_body(request, FeedbackBody)
        return json_response(self.desk.submit(body.kind, body.text, body.phone, body.ticket), status=201)

    async def calls_unavailable(self, request: web.Request) -> web.Response:
        raise CallsUnavailable("Chức năng gọi cán bộ chưa sẵn sàng. Xin mời quý vị đến quầy hướng dẫn.")

    # Board -----------------------------------------------------------------------------------------
    async def queue(self, request: web.Request) -> web.Response:
        snap = self.core.queue.snapshot(self.core.settings.web.board_last_calls)
        for call in snap["last_calls"]:
            call["announcement"] = announcement(call["type"], call)
        return json_response({**board_state(snap), "seq": self.hub.last_seq()})

    # Counters --------------------------------------------------------------------------------------
    async def _authorise(self, request: web.Request, counter: int) -> None:
        self.core.catalogue.counter(counter)
        await self.auth.authorise(counter, presented_pin(request.headers.get("Authorization"),
                                                         request.headers.get("X-Counter-Pin")), client_address(request))
        officer = unquote(request.headers.get("X-Officer", "")).strip()[:MAX_OFFICER_CHARS]
        if officer:
            self.officer_at[counter] = officer

    async def counter_login(self, request: web.Request) -> web.Response:
        counter = _counter(request)
        self.core.catalogue.counter(counter)
        require_json(request)
        body = await read_body(request, LoginBody)
        try:
            session = self.auth.login(counter, body.pin, client_address(request))
        finally:
            await self.auth.save_if_dirty()
        if body.officer and body.officer.strip():
            self.officer_at[counter] = body.officer.strip()
        expires = datetime.fromtimestamp(session.expires_at, UTC).isoformat(timespec="seconds")
        return json_response({"counter": counter, "token": session.token,
                              "expires_at": expires.replace("+00:00", "Z")})

    async def counter_logout(self, request: web.Request) -> web.Response:
        counter = _counter(request)
        self.auth.logout(presented_pin(request.headers.get("Authorization"), None))
        return json_response({"counter": counter, "logged_out": True})

    async def counter_state(self, request: web.Request) -> web.Response:
        counter = _counter(request)
        await self._authorise(request, counter)
        queue = self.core.queue
        served = [s.code for s in self.core.catalogue.services_of_counter(counter)]
        current = queue.current(counter)
        return json_response({
            "counter": counter, "name": self.core.catalogue.counter(counter).name,
            "officer": self.officer_at.get(counter),
            "services": [{"code": s.code, "name": s.name} for s in self.core.catalogue.services()],
            "serves": served,
            "ticket": current.public() if current else None,
            "waiting": [t.public() for t in queue.waiting() if t.service in served],
            "held": [t.public() for t in queue.held()],
            "seq": self.hub.last_seq(),
        })

    async def counter_action(self, request: web.Request) -> web.Response:
        counter = _counter(request)
        action = request.match_info["action"]
        queue = self.core.queue
        if action not in ("next", "recall", "start", "done", "no-show", "transfer", "hold", "call", "return"):
            raise NotFound(f"Không có thao tác '{action}' (unknown counter action)", code="unknown_action")
        await self._authorise(request, counter)
        result: CounterResult
        if action == "transfer":
            result = queue.transfer(counter, (await read_body(request, TransferBody)).service)
        elif action == "call":
            body = await read_body(request, CallBody)
            result = queue.call(counter, body.ticket, body.reason)
        elif action == "return":
            body_t = await read_body(request, ReturnBody)
            ticket = queue.return_(body_t.ticket)
            result = CounterResult("return", counter, None, ticket, note=f"Số {ticket.number} đã vào lại hàng chờ.")
        else:
            result = {"next": queue.next, "recall": queue.recall, "start": queue.start, "done": queue.done,
                      "no-show": queue.no_show, "hold": queue.hold}[action](counter)
        officer = self.officer_at.get(counter)
        if officer and result.ticket is not None:
            self.served_by[result.ticket.id] = officer
            self.served_by.move_to_end(result.ticket.id)
            while len(self.served_by) > _SERVED_BY_MEMORY:
                self.served_by.popitem(last=False)
        data = result.public()
        if result.ticket is not None and result.ticket.state == "called" and action in ("next", "call", "recall"):
            data["announcement"] = announcement("ticket.recalled" if action == "recall" else "ticket.called",
                                                {"number": result.ticket.number, "counter": counter})
        return json_response(data)

    # Operations ------------------------------------------------------------------------------------
    async def health(self, request: web.Request) -> web.Response:
        return json_response({"status": "ok", "version": __version__, "seq": self.hub.last_seq(),
                                  "kiosk": self.core.settings.device.kiosk})

    async def prometheus(self, request: web.Request) -> web.Response:
        waiting = {row[0]: int(row[1]) for row in self.core.db.conn.execute(
            "SELECT service, COUNT(*) FROM tickets WHERE state='waiting' GROUP BY service")}
        for service in self.core.catalogue.services():
            waiting.setdefault(service.code, 0)
        text = self.metrics.render(last_seq=self.hub.last_seq(), waiting=waiting, live_clients=self.hub.clients,
                                   live_messages=self.hub.messages_sent, auth_failures=self.auth.failures_total,
                                   announcer=self.announcer)
        return web.Response(text=text, content_type="text/plain", charset="utf-8",
                            headers={"X-Prometheus-Format": "0.0.4"})
