"""What the screens on the live stream get of check-in events: only what they display.

Check-in events in the log (synced to central) carry booking ids, dossier codes and ticket ids for
reports; a screen on the LAN shows a sentence. The live stream sends the sentence and the kind, and
drops the booking/dossier codes a check-in adds to `ticket.issued`.
"""

from __future__ import annotations

from typing import Any

_CHECKIN_FIELDS = ("kind", "code", "message", "number")
_CHECKIN_ONLY = ("booking", "dossier")


def for_screen(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    if event_type.startswith("checkin."):
        return {k: data[k] for k in _CHECKIN_FIELDS if k in data}
    if event_type == "ticket.issued":
        return {k: v for k, v in data.items() if k not in _CHECKIN_ONLY}
    return data
