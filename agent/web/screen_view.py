"""What the public screens (board, kiosk, counter consoles' live view) may see of the queue and its events.

Everything here goes to any client of `/api/live` and `GET /api/queue` on the LAN, so it is an
allow-list: a field not named below is not sent. Ticket ids are left out on purpose (they are the
key that rates a ticket), as are dossier and booking codes, resident references and call ids.
"""

from __future__ import annotations

from typing import Any

_TICKET = ("number", "service", "priority", "counter")
# Fields of each event's data a screen needs; event types not listed are not forwarded at all.
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "ticket.issued": ("number", "service", "priority"),
    "ticket.called": _TICKET,
    "ticket.recalled": _TICKET,
    "ticket.serving": _TICKET,
    "ticket.transferred": (*_TICKET, "from", "to"),
    "ticket.done": _TICKET,
    "ticket.no_show": _TICKET,
    "ticket.cancelled": _TICKET,
    "ticket.held": _TICKET,
    "ticket.returned": ("number", "service", "priority"),
    # The kiosk screen shows the message; an ID card's greeting may suggest a priority class.
    "checkin.accepted": ("kind", "code", "number", "state", "message", "suggested_priority"),
    "checkin.rejected": ("kind", "code", "message"),
    # Calls: the kiosk screen shows the state of its call, never the call's id (calls are per-kiosk).
    "call.requested": (),
    "call.answered": (),
    "call.missed": ("callback_offered",),
    "call.ended": ("by", "reason", "connected"),
    "agent.started": ("version",),
}
CALL_STATES = {"call.requested": "requested", "call.answered": "answered", "call.missed": "missed",
               "call.ended": "ended"}
_STATE_TICKET = ("number", "service", "priority", "state", "counter", "arrived_at", "called_at",
                 "last_called_at", "serving_at")
_LAST_CALL = ("seq", "at", "type", "number", "counter", "announcement")


def event_data(event_type: str, data: dict[str, Any]) -> dict[str, Any] | None:
    """The screen's view of one event's data, or None when screens do not get this event."""
    fields = EVENT_FIELDS.get(event_type)
    if fields is None:
        return None
    out = {k: data[k] for k in fields if k in data}
    if event_type in CALL_STATES:
        out["state"] = CALL_STATES[event_type]
    return out


def _pick(item: dict[str, Any] | None, fields: tuple[str, ...]) -> dict[str, Any] | None:
    return None if item is None else {k: item[k] for k in fields if k in item}


def board_state(snap: dict[str, Any]) -> dict[str, Any]:
    """`QueueService.snapshot()` as the board and kiosk show it (announcements already added)."""
    out: dict[str, Any] = {k: snap[k] for k in ("day", "services") if k in snap}
    out["counters"] = [{"number": c["number"], "name": c["name"], "ticket": _pick(c["ticket"], _STATE_TICKET)}
                       for c in snap["counters"]]
    out["last_calls"] = [_pick(c, _LAST_CALL) for c in snap["last_calls"]]
    out["waiting"] = [_pick(t, _STATE_TICKET) for t in snap["waiting"]]
    out["held"] = [_pick(t, _STATE_TICKET) for t in snap["held"]]
    return out
