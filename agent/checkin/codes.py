"""The two plain payloads: dossier receipts (mã hồ sơ) and our own ticket QR."""

from __future__ import annotations

import re

TICKET_PREFIX = "WKT1:"
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# The national public-service portal's receipt code, e.g. 000.00.19.H56-241205-0001:
# agency code, then the receiving date YYMMDD, then a 4-digit serial. A setting may replace it.
DEFAULT_DOSSIER_PATTERN = r"^\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}-\d{6}-\d{4}$"


def ticket_payload(ticket_id: str) -> str:
    """What the ticket QR (printed or on screen) holds: no personal data, just the ticket id."""
    return TICKET_PREFIX + ticket_id


def parse_ticket(text: str) -> str | None:
    if not text.startswith(TICKET_PREFIX):
        return None
    ticket_id = text[len(TICKET_PREFIX):]
    return ticket_id if _UUID.match(ticket_id) else None


def parse_dossier(text: str, pattern: re.Pattern[str]) -> str | None:
    text = text.strip()
    return text if len(text) <= 64 and pattern.match(text) else None
