"""HTTP routes of the printer: its state for the kiosk screen, a ticket's print state, the ticket
preview (the printed layout as PNG) and a counter's reprint. Mounted through the web server's
`extra_routes`; the reprint checks the counter's PIN with the server's own `CounterAuth` (one
lockout count for every counter action).
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.clock import Clock
from agent.core import Core
from agent.errors import InvalidInput, Unauthorized
from agent.printing import layout
from agent.printing.jobs import PRINT_SOURCES, request_reprint, ticket_view
from agent.printing.service import PrintService
from agent.web.api import json_response
from agent.web.auth import presented_pin
from agent.web.guard import client_address
from agent.web.server import COUNTER_AUTH

MAX_WAIT_S = 8.0


class ReprintBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ticket: str | None = Field(None, min_length=1, max_length=64)


async def read_reprint(request: web.Request) -> ReprintBody:
    """The body, bounded by the app's client_max_size; unknown keys and bad JSON are refused."""
    raw = await request.read()
    try:
        return ReprintBody.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(f"Dữ liệu không hợp lệ ({problems}).", code="invalid_input") from exc


def printer_routes(core: Core, service: PrintService | None, clock: Clock) -> list[web.RouteDef]:
    async def printer_state(request: web.Request) -> web.Response:
        if service is None:
            return json_response({"state": "off"})
        return json_response(service.state())

    async def ticket_print_state(request: web.Request) -> web.Response:
        ticket = core.queue.get(request.match_info["id"])
        if service is None:
            return json_response({"ticket": ticket.id, "state": "off"})
        try:
            wait = min(MAX_WAIT_S, max(0.0, float(request.query.get("wait", "0"))))
        except ValueError:
            wait = 0.0
        return json_response(await service.wait_ticket(ticket.id, wait))

    async def preview(request: web.Request) -> web.Response:
        ticket = core.queue.get(request.match_info["id"])
        view = ticket_view(core, ticket, PRINT_SOURCES.get(ticket.source, "ticket"), False,
                           core.settings.printer.footer)
        logo = service.logo if service is not None else None
        image = await asyncio.to_thread(layout.render, view, core.settings.printer.width_dots(), logo)
        body = await asyncio.to_thread(layout.png, image)
        return web.Response(body=body, content_type="image/png", headers={"Cache-Control": "no-store"})

    async def reprint(request: web.Request) -> web.Response:
        raw = request.match_info["n"]
        counter = int(raw)
        core.catalogue.counter(counter)
        auth = request.app.get(COUNTER_AUTH)
        if auth is None:
            raise Unauthorized("Quầy chưa được cấp mã PIN.", code="counter_locked")
        await auth.authorise(counter, presented_pin(request.headers.get("Authorization"),
                                                    request.headers.get("X-Counter-Pin")), client_address(request))
        body = await read_reprint(request)
        if body.ticket is None:
            current = core.queue.current(counter)
            if current is None:
                return json_response({"error": "Quầy chưa có số nào đang gọi: hãy nhập số cần in lại.",
                                      "code": "no_ticket"}, status=409)
            ref = current.id
        else:
            ref = body.ticket
        ticket, seq = request_reprint(core, ref, clock, "counter", counter)
        note = f"Đang in lại phiếu số {ticket.number}."
        if service is None:
            note = "Máy in phiếu chưa được bật trên ki-ốt này (printer.enabled)."
        elif service.fault:
            note = f"Đã ghi yêu cầu in lại số {ticket.number}; {_fault_note(service)}"
        return json_response({"note": note, "ticket": ticket.public(), "seq": seq}, status=202)

    return [
        web.get("/api/printer", printer_state),
        web.get("/api/printer/tickets/{id}", ticket_print_state),
        web.get("/api/tickets/{id}/ticket.png", preview),
        web.post("/api/printer/counters/{n:\\d{1,3}}/reprint", reprint),
    ]


def _fault_note(service: PrintService) -> str:
    state = service.state()
    return str(state.get("message", "")).lower() + " Phiếu sẽ được in khi máy in hoạt động lại."
