"""The two plain payloads: dossier receipts (mã hồ sơ) and our own ticket QR.

A receipt QR (giấy tiếp nhận hồ sơ và hẹn trả kết quả, Circular 01/2023/TT-VPCP) may hold the bare
code or several fields. We found no published layout of those fields, so the common shapes are
read: delimited fields, key=value pairs, a JSON object, a URL with the code as a query parameter.
Which field or keys hold the code are settings; whatever is extracted must still match the
dossier pattern, so junk is rejected.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

if TYPE_CHECKING:
    from agent.settings import CheckinSettings

TICKET_PREFIX = "WKT1:"
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# The national public-service portal's receipt code, e.g. 000.00.19.H56-241205-0001:
# agency code, then the receiving date YYMMDD, then a 4-digit serial. A setting may replace it.
DEFAULT_DOSSIER_PATTERN = r"^\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}-\d{6}-\d{4}$"


# The mobile ticket (#12 item 7): BASE/t/<token>, the token the ticket id's 16 bytes in unpadded
# base64url (22 characters). Ticket ids are UUIDv7 with 74 random bits, so the page cannot be guessed,
# and the kiosk camera reads the ticket id back from the URL whichever central base it names.
_MOBILE = re.compile(r"^https?://[^\s/?#]+(?:/[^\s?#]*)?/t/([A-Za-z0-9_-]{22})$")


def ticket_token(ticket_id: str) -> str:
    return base64.urlsafe_b64encode(uuid.UUID(ticket_id).bytes).rstrip(b"=").decode()


def ticket_from_token(token: str) -> str | None:
    try:
        raw = base64.urlsafe_b64decode(token + "==")
    except (binascii.Error, ValueError):
        return None
    return str(uuid.UUID(bytes=raw)) if len(raw) == 16 and len(token) == 22 else None


def ticket_payload(ticket_id: str, public_base: str = "") -> str:
    """What the ticket QR (printed or on screen) holds: no personal data, just the ticket id, as a URL of
    central's public ticket page when `web.central_public_url` is set."""
    if public_base:
        return f"{public_base.rstrip('/')}/t/{ticket_token(ticket_id)}"
    return TICKET_PREFIX + ticket_id


def parse_ticket(text: str) -> str | None:
    if text.startswith(TICKET_PREFIX):
        ticket_id = text[len(TICKET_PREFIX):]
        return ticket_id if _UUID.match(ticket_id) else None
    match = _MOBILE.match(text)
    mobile = ticket_from_token(match.group(1)) if match else None
    return mobile if mobile and _UUID.match(mobile) else None


MAX_CODE = 64
MAX_RECEIPT = 2048
DEFAULT_KEYS = ("maHoSo", "MaHoSo", "mahoso", "ma_ho_so", "soHoSo", "dossier", "code")


@dataclass(frozen=True, slots=True)
class DossierFormat:
    """Where a multi-field receipt keeps its code (settings `checkin.dossier_*`)."""

    delimiter: str = "|"
    field: int | None = None  # 0-based position among delimited fields; None: any field that matches
    keys: tuple[str, ...] = DEFAULT_KEYS  # keys in key=value, JSON or URL query payloads

    @classmethod
    def from_settings(cls, settings: CheckinSettings) -> DossierFormat:
        return cls(settings.dossier_delimiter, settings.dossier_field, tuple(settings.dossier_keys))


def _keyed(text: str, keys: tuple[str, ...]) -> Iterator[str]:
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError:
            return
        if isinstance(obj, dict):
            yield from (v for k, v in obj.items() if k in keys and isinstance(v, str))
        return
    if "://" in text:
        try:
            query = urlsplit(text).query
        except ValueError:
            return
        yield from (v for k, v in parse_qsl(query) if k in keys)
        return
    for part in re.split(r"[&;\n|]", text):
        key, sep, value = part.partition("=") if "=" in part else part.partition(":")
        if sep and key.strip() in keys:
            yield value.strip()


def _candidates(text: str, fmt: DossierFormat) -> Iterator[str]:
    yield text
    if len(text) > MAX_RECEIPT:
        return
    if fmt.keys:
        yield from _keyed(text, fmt.keys)
    if fmt.delimiter and fmt.delimiter in text:
        fields = [f.strip() for f in text.split(fmt.delimiter)]
        if fmt.field is None:
            yield from fields
        elif fmt.field < len(fields):
            yield fields[fmt.field]


def parse_dossier(text: str, pattern: re.Pattern[str], fmt: DossierFormat | None = None) -> str | None:
    """The dossier code a receipt QR holds, or None when nothing in it matches the pattern."""
    for candidate in _candidates(text.strip(), fmt or DossierFormat()):
        if len(candidate) <= MAX_CODE and pattern.match(candidate):
            return candidate
    return None
