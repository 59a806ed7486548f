"""Every event message is checked before central stores it: a hostile or broken kiosk gets its message
quarantined with a reason, and every other kiosk keeps flowing.

What a message may be: at most `MAX_PAYLOAD` bytes of UTF-8 JSON, nested at most `MAX_DEPTH` deep with
at most `MAX_NODES` values, text without NUL or lone surrogates (PostgreSQL cannot store either), an
envelope whose fields have bounded sizes and shapes, a `seq` that fits every database's BIGINT and a
JavaScript number, and a ward/kiosk equal to the topic's (the broker's ACL ties the topic to the
kiosk's identity, so the topic is the truth).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError, field_validator

MAX_PAYLOAD = 64 * 1024
MAX_DEPTH = 12
MAX_NODES = 5_000
MAX_SEQ = 2**53 - 1  # exact in a double (JavaScript consoles) and far inside BIGINT
EXCERPT_CHARS = 200
_ID = r"[0-9A-Za-z][0-9A-Za-z._:-]{0,63}"
_LONG_DIGITS = re.compile(r"\d{6,}")


class Envelope(BaseModel):
    """The event envelope (docs/integration.md); unknown extra fields are tolerated for forward compatibility."""

    model_config = ConfigDict(extra="ignore")
    v: StrictInt = Field(ge=1, le=1)
    id: StrictStr = Field(pattern=f"^{_ID}$")
    kiosk: StrictStr = Field(pattern=r"^[a-z0-9-]{1,32}$")
    ward: StrictStr = Field(pattern=r"^[0-9]{1,8}$")
    seq: StrictInt = Field(ge=1, le=MAX_SEQ)
    type: StrictStr = Field(pattern=r"^[a-z][a-z0-9_]{0,31}(\.[a-z][a-z0-9_]{0,31}){0,3}$")
    at: StrictStr = Field(max_length=40)
    # The kiosk's event log ("" from kiosks older than the field): a replaced database starts a new one.
    log: StrictStr = Field(default="", pattern=f"^({_ID})?$")
    data: dict[str, Any]

    @field_validator("at")
    @classmethod
    def _rfc3339(cls, value: str) -> str:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError("not an RFC 3339 time") from exc
        if parsed.tzinfo is None:
            raise ValueError("an RFC 3339 time needs its offset")
        return value


@dataclass(frozen=True)
class Received:
    envelope: Envelope
    raw_data: str


@dataclass(frozen=True)
class Rejected:
    """Why a message was not stored, with a bounded excerpt for ops (long digit runs masked)."""

    topic: str
    ward: str
    kiosk: str
    seq: int | None
    code: str
    detail: str
    excerpt: str
    size: int


class Invalid(ValueError):
    """`code` is a short, stable reason (the quarantine groups by it); `detail` says more."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def excerpt(payload: bytes) -> str:
    """A short, safe excerpt: no NUL, no lone surrogates, digit runs (ID and phone numbers) masked."""
    text = payload[: EXCERPT_CHARS * 4].decode("utf-8", errors="replace")[:EXCERPT_CHARS]
    text = text.replace("\x00", "\ufffd")
    return _LONG_DIGITS.sub(lambda m: "#" * len(m.group(0)), text)


def _check_tree(value: Any) -> None:
    """Depth, size and text of a parsed JSON value, without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    nodes = 0
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise Invalid("too_many_values", f"more than {MAX_NODES} values")
        if depth > MAX_DEPTH:
            raise Invalid("too_deep", f"nested deeper than {MAX_DEPTH}")
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_text(key)
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, int) and not isinstance(item, bool) and abs(item) > MAX_SEQ:
            raise Invalid("bad_number", "an integer too large for a database column")


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise Invalid("bad_text", "text with a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise Invalid("bad_text", "text with a lone surrogate") from exc


def parse_event(payload: bytes, ward: str, kiosk: str) -> Received:
    """The stored form of one event message from `{root}/{ward}/{kiosk}/events`, or `Invalid`."""
    if len(payload) > MAX_PAYLOAD:
        raise Invalid("too_large", f"message larger than {MAX_PAYLOAD} bytes")
    try:
        text = payload.decode("utf-8")
        raw = json.loads(text)
    except UnicodeDecodeError as exc:
        raise Invalid("not_utf8", "not UTF-8") from exc
    except RecursionError as exc:
        raise Invalid("too_deep", f"nested deeper than {MAX_DEPTH}") from exc
    except ValueError as exc:
        raise Invalid("not_json", "not JSON") from exc
    if not isinstance(raw, dict):
        raise Invalid("not_json", "not a JSON object")
    _check_tree(raw)
    try:
        envelope = Envelope.model_validate(raw, strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "envelope"
        raise Invalid("bad_envelope", f"field {where}: {first['msg']}") from exc
    if (envelope.ward, envelope.kiosk) != (ward, kiosk):
        raise Invalid("wrong_kiosk", f"envelope names {envelope.ward}/{envelope.kiosk}, not its topic's kiosk")
    data = json.dumps(envelope.data, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return Received(envelope, data)


def seq_hint(payload: bytes) -> int | None:
    """The seq a rejected message claims, when it can be read cheaply (for the quarantine row)."""
    match = re.search(rb'"seq"\s*:\s*(\d{1,15})\b', payload[:4096])
    return int(match.group(1)) if match else None
