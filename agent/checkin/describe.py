"""What a payload is, for `kiosk qr decode`: its kind and its fields, masked unless asked for raw."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from agent.checkin import appointment, cccd, codes, privacy
from agent.errors import KioskError


def describe(text: str, today: date, dossier_re: re.Pattern[str], raw: bool = False,
             dossier_fmt: codes.DossierFormat | None = None) -> dict[str, Any]:
    if appointment.looks_like_appointment(text):
        try:
            appt = appointment.decode_token(text, {})
        except appointment.TokenRejected as exc:
            # Without keys only the shape can be checked; unknown_key means the shape is right.
            if exc.code != "unknown_key":
                return {"kind": "appointment", "valid": False, "error": exc.code}
            return {"kind": "appointment", "valid": None, "note": "signature not checked (no key given)"}
        return {"kind": "appointment", "booking": appt.booking}
    if cccd.looks_like_id_card(text):
        try:
            card = cccd.parse_id_card(text, today)
        except KioskError as exc:
            return {"kind": "id_card", "valid": False, "error": exc.message}
        if raw:
            return {"kind": "id_card", "valid": True, "id": card.id_number, "old_id": card.old_id, "name": card.name,
                    "birth": card.birth.isoformat(), "sex": card.sex, "address": card.address,
                    "issued": card.issued.isoformat() if card.issued else None}
        return {"kind": "id_card", "valid": True, "id": privacy.mask_id(card.id_number),
                "name": privacy.mask_name(card.name), "age": card.age_on(today)}
    ticket = codes.parse_ticket(text)
    if ticket is not None:
        return {"kind": "ticket", "ticket": ticket}
    dossier = codes.parse_dossier(text, dossier_re, dossier_fmt)
    if dossier is not None:
        return {"kind": "dossier", "dossier": dossier}
    return {"kind": "unknown", "length": len(text), **({"text": text} if raw else {})}
