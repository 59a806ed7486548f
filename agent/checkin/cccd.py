"""The QR code on a chip ID card (CCCD, and the căn cước card issued since July 2024).

Layout: `ID12|ID9 or empty|Full name|DDMMYYYY birth|Nam/Nữ|Address|DDMMYYYY issued`, and the
2024 card appends more fields. We parse by content, tolerate extra trailing fields, and check
the ID against itself: digits 4–6 encode the sex and century and the last two digits of the
birth year (Circular 07/2016/TT-BCA, Art. 7), which catches most misreads and forgeries by typo.

The parsed card holds personal data: it lives in memory for one decision and is never logged,
stored or sent (see agent.checkin.privacy).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from agent.errors import InvalidInput

_ID12 = re.compile(r"^\d{12}$")
_ID9 = re.compile(r"^\d{9}$")
_DATE = re.compile(r"^\d{8}$")
MAX_LEN = 1024


class CardInvalid(InvalidInput):
    code = "id_card_invalid"


@dataclass(frozen=True, slots=True, repr=False)
class IdCard:
    id_number: str
    old_id: str | None
    name: str
    birth: date
    sex: str
    address: str
    issued: date | None

    def __repr__(self) -> str:  # never let a traceback or a log line print the fields
        return "IdCard(<redacted>)"

    def age_on(self, day: date) -> int:
        years = day.year - self.birth.year
        return years - ((day.month, day.day) < (self.birth.month, self.birth.day))


def looks_like_id_card(text: str) -> bool:
    head = text.split("|", 1)[0]
    return "|" in text and bool(_ID12.match(head))


def _date(text: str, what: str) -> date:
    if not _DATE.match(text):
        raise CardInvalid(f"ID card QR: {what} is not DDMMYYYY")
    try:
        return date(int(text[4:]), int(text[2:4]), int(text[:2]))
    except ValueError as exc:
        raise CardInvalid(f"ID card QR: {what} is not a real date") from exc


def _check_id(id_number: str, birth: date, sex: str) -> None:
    if not 1 <= int(id_number[:3]) <= 96:
        raise CardInvalid("ID card QR: the ID's province code is not valid")
    code = int(id_number[3])
    century = 1900 + 100 * (code // 2)
    female = code % 2 == 1
    if century > 2300 or not century <= birth.year < century + 100:
        raise CardInvalid("ID card QR: the ID does not match the birth century")
    if int(id_number[4:6]) != birth.year % 100:
        raise CardInvalid("ID card QR: the ID does not match the birth year")
    if female != (sex == "Nữ"):
        raise CardInvalid("ID card QR: the ID does not match the sex")


def parse_id_card(text: str, today: date) -> IdCard:
    """Parse and validate; raises CardInvalid (without echoing any field) when it is not a valid card."""
    if len(text) > MAX_LEN:
        raise CardInvalid("ID card QR: too long")
    fields = [f.strip() for f in text.strip().split("|")]
    if len(fields) < 7:
        raise CardInvalid("ID card QR: too few fields")
    id_number, old_id, name, birth_s, sex, address, issued_s = fields[:7]
    if not _ID12.match(id_number):
        raise CardInvalid("ID card QR: the ID is not 12 digits")
    if old_id and not _ID9.match(old_id):
        raise CardInvalid("ID card QR: the old ID is not 9 digits")
    if not name or any(ch.isdigit() for ch in name) or len(name) > 100:
        raise CardInvalid("ID card QR: the name is not valid")
    birth = _date(birth_s, "birth date")
    if sex not in ("Nam", "Nữ"):
        raise CardInvalid("ID card QR: the sex is not Nam or Nữ")
    issued = _date(issued_s, "issue date") if issued_s else None
    if birth > today or (issued is not None and not birth <= issued <= today):
        raise CardInvalid("ID card QR: the dates are not consistent")
    _check_id(id_number, birth, sex)
    return IdCard(id_number, old_id or None, name, birth, sex, address, issued)
