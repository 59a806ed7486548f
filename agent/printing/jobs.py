"""Which events print, what a ticket shows, and the reprint request (an event, so any process may ask).

A print job is keyed by the seq of the event that asked for it: `ticket.issued` from the kiosk
screen or a check-in (appointment, dossier), or `ticket.print_requested` (a counter's or the CLI's
reprint). Tickets taken with `kiosk ticket take` (source `cli`) or through the API by other
programs (`api`) are not printed: a program has no paper to hand to anyone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from agent.checkin.codes import ticket_payload
from agent.clock import Clock, parse_rfc3339
from agent.core import Core
from agent.errors import NotFound
from agent.printing.layout import DEFAULT_FOOTER, TicketView
from agent.queue import estimates
from agent.queue.tickets import WAITING, Ticket
from agent.store import events
from agent.store.events import Event

PRINT_SOURCES = {"kiosk": "ticket", "checkin": "ticket", "appointment": "appointment", "dossier": "dossier"}
REPRINT = "ticket.print_requested"


@dataclass(frozen=True, slots=True)
class JobRequest:
    seq: int
    ticket: str
    number: str
    kind: str
    at: datetime  # when the event asked for the print (UTC)
    reprint: bool


def job_for(event: Event) -> JobRequest | None:
    """The print job an event asks for, or None (most events print nothing)."""
    data = event.data
    if event.type == "ticket.issued":
        kind = PRINT_SOURCES.get(str(data.get("source")))
        if kind is None:
            return None
        reprint = False
    elif event.type == REPRINT:
        kind, reprint = "ticket", True
    else:
        return None
    return JobRequest(seq=event.seq, ticket=str(data["ticket"]), number=str(data["number"]), kind=kind,
                      at=parse_rfc3339(event.at), reprint=reprint)


def ticket_view(core: Core, ticket: Ticket, kind: str, reprint: bool, footer: str | None) -> TicketView:
    """What the ticket shows now: people ahead and the estimate are computed at print time."""
    catalogue = core.catalogue
    service = catalogue.service(ticket.service)
    priority = catalogue.priority(ticket.priority).name if ticket.priority else None
    conn = core.db.conn
    ahead = 0
    if ticket.state == WAITING:
        ahead = estimates.people_ahead(conn, ticket.service, ticket.arrival, ticket.priority is not None)
    avg = estimates.average_service_minutes(conn, service, core.settings.queue.estimate_window)
    wait = estimates.estimate_wait_minutes(ahead, avg, service)
    qr = ticket_payload(ticket.id, core.settings.web.central_public_url)  # a central URL: the mobile ticket
    local = parse_rfc3339(ticket.arrived_at).astimezone(ZoneInfo(core.settings.queue.timezone))
    return TicketView(office=catalogue.office.name, number=ticket.number, service=service.name, priority=priority,
                      ahead=ahead, wait_minutes=wait, issued_at=local, qr=qr, kind=kind,
                      reprint=reprint, footer=footer or DEFAULT_FOOTER)


def request_reprint(core: Core, ref: str, clock: Clock, by: str, counter: int | None = None) -> tuple[Ticket, int]:
    """Ask the agent's printer for another copy of today's ticket `ref` (number or id); returns (ticket, seq)."""
    ticket = core.queue.get(ref)
    if ticket.day != core.queue.today():
        raise NotFound(f"Số {ticket.number} không phải của hôm nay.", code="unknown_ticket")
    data: dict[str, Any] = {**ticket.ref(), "by": by}
    if counter is not None:
        data["counter"] = counter
    with core.db.write() as conn:
        event = events.append(conn, REPRINT, data, clock())
    return ticket, event.seq
