"""Appointment QR tokens, signed by the central booking system and verified offline.

Format (byte-mode QR, ~190 characters):

    WKA1.<base64url(JSON payload)>.<base64url(Ed25519 signature)>

The signature covers the ASCII bytes `WKA1.<payload part>`. Payload keys are short to keep the
symbol small: `k` key id, `b` booking id, `w` ward code, `s` service code, `d` date (YYYY-MM-DD,
local), `t` slot start (HH:MM, local), `m` slot length in minutes (default 30). A key id lets the
city rotate keys: the kiosk holds a map `key id → public key` in its settings.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.errors import InvalidInput, Refused

PREFIX = "WKA1."
MAX_LEN = 600


class TokenRejected(Refused):
    """A token that is not acceptable here and now; `code` says why, `message` says it to a resident."""


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    k: str = Field(min_length=1, max_length=16)
    b: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9._-]+$")
    w: str = Field(pattern=r"^\d{5}$")
    s: str = Field(pattern=r"^[a-z0-9-]{1,40}$")
    d: date
    t: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    m: int = Field(30, ge=5, le=480)


@dataclass(frozen=True, slots=True)
class Appointment:
    key_id: str
    booking: str
    ward: str
    service: str
    day: date
    slot: time
    minutes: int

    def start(self, tz: ZoneInfo) -> datetime:
        return datetime.combine(self.day, self.slot, tz)


def _b64d(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]+", text):
        raise binascii.Error("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def load_public_key(text: str) -> Ed25519PublicKey:
    """A raw 32-byte Ed25519 public key in base64/base64url."""
    try:
        raw = _b64d(text.strip().rstrip("=").replace("+", "-").replace("/", "_"))
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, binascii.Error) as exc:
        raise InvalidInput("appointment public key is not a base64 Ed25519 key", code="bad_key") from exc


def looks_like_appointment(text: str) -> bool:
    return text.startswith(PREFIX)


def decode_token(text: str, keys: dict[str, Ed25519PublicKey]) -> Appointment:
    """Check the signature and shape; raises TokenRejected(code='forged'|'malformed'|'unknown_key')."""
    bad = TokenRejected("Mã hẹn không hợp lệ. Mời ông/bà đến quầy để được hỗ trợ.", code="malformed")
    if len(text) > MAX_LEN or not text.startswith(PREFIX) or text.count(".") != 2:
        raise bad
    _, payload_part, sig_part = text.split(".")
    try:
        payload_raw = _b64d(payload_part)
        signature = _b64d(sig_part)
        payload = _Payload.model_validate(json.loads(payload_raw))
    except (binascii.Error, ValueError, ValidationError, UnicodeDecodeError) as exc:
        raise bad from exc
    key = keys.get(payload.k)
    if key is None:
        raise TokenRejected("Mã hẹn không được hệ thống này công nhận. Mời đến quầy để được hỗ trợ.",
                            code="unknown_key")
    try:
        key.verify(signature, (PREFIX + payload_part).encode())
    except InvalidSignature as exc:
        raise TokenRejected("Mã hẹn không hợp lệ (sai chữ ký). Mời đến quầy để được hỗ trợ.", code="forged") from exc
    slot = time.fromisoformat(payload.t)
    return Appointment(payload.k, payload.b, payload.w, payload.s, payload.d, slot, payload.m)


def check_window(appt: Appointment, now: datetime, tz: ZoneInfo, early_minutes: float, late_minutes: float) -> None:
    """Accept from `early_minutes` before the slot until `late_minutes` after its end."""
    start = appt.start(tz)
    opens = start - timedelta(minutes=early_minutes)
    closes = start + timedelta(minutes=appt.minutes + late_minutes)
    local = now.astimezone(tz)
    if local < opens:
        when = f"{appt.slot.strftime('%H:%M')} ngày {appt.day.strftime('%d/%m/%Y')}"
        raise TokenRejected(f"Chưa đến giờ hẹn ({when}). Mời quay lại từ {opens.strftime('%H:%M')}.",
                            code="not_yet_open")
    if local > closes:
        raise TokenRejected("Lịch hẹn đã quá giờ. Mời ông/bà lấy số thường hoặc đặt lịch mới.", code="expired")


def issue_token(private_key: Ed25519PrivateKey, key_id: str, booking: str, ward: str, service: str, day: date,
                slot: str, minutes: int = 30) -> str:
    """What the central booking system does; here for tests and `kiosk qr token issue`."""
    payload = _Payload(k=key_id, b=booking, w=ward, s=service, d=day, t=slot, m=minutes)
    body = json.dumps({"k": payload.k, "b": payload.b, "w": payload.w, "s": payload.s, "d": payload.d.isoformat(),
                       "t": payload.t, "m": payload.m}, separators=(",", ":")).encode()
    part = _b64e(body)
    signature = private_key.sign((PREFIX + part).encode())
    return f"{PREFIX}{part}.{_b64e(signature)}"


def public_key_text(private_key: Ed25519PrivateKey) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _b64e(raw)
