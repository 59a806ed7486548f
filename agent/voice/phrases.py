"""The call-out sentence, spoken and shown.

How a ticket number is read
---------------------------
A ticket "A012" is spoken as its prefix letter by its Vietnamese letter name, then the number as a
whole number without the leading zeros: "a mười hai". Full sentence::

    Mời công dân có số thứ tự a mười hai, đến quầy số ba.

Why a whole number and not digit by digit ("a không một hai"), for elderly listeners:

* it is how people say and remember numbers ("số mười hai"), and the short form is easier to catch
  in a noisy hall: "mười hai" is two syllables, "không một hai" three, and "không" carries nothing;
* the digit names hide traps that whole numbers avoid by context: a listener who misses "một" in
  "không một hai" has the wrong ticket, while "mười hai" survives a lost syllable as "…hai"
  plus the board;
* the display board shows the ticket exactly as printed ("A012"), so the eye checks what the ear
  heard.

``ticket_reading="digits"`` switches to digit-by-digit for an office that prefers it. The comma
after the ticket gives the synthesiser (and a recorded clip pack) a short pause so the counter
number is not run into the ticket number. The counter is read as a whole number ("quầy số mười hai").

Letter names are the common spoken forms taught in Vietnamese schools (B "bê", C "xê", L "e lờ",
S "ét xì", X "ích xì", Y "i dài"); foreign letters use their usual Vietnamese names (F "ép", J "gi",
W "vê kép", Z "dét"). Multi-syllable names are stored with a space, which is what the synthesiser
and the clip pack want.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from agent.errors import InvalidInput
from agent.voice.numbers import DIGITS, NORTHERN, NumberStyle, number_words

LETTER_NAMES: dict[str, str] = {
    "A": "a",
    "B": "bê",
    "C": "xê",
    "D": "dê",
    "Đ": "đê",
    "E": "e",
    "F": "ép",
    "G": "giê",
    "H": "hát",
    "I": "i",
    "J": "gi",
    "K": "ca",
    "L": "e lờ",
    "M": "em mờ",
    "N": "en nờ",
    "O": "o",
    "P": "pê",
    "Q": "quy",
    "R": "e rờ",
    "S": "ét xì",
    "T": "tê",
    "U": "u",
    "V": "vê",
    "W": "vê kép",
    "X": "ích xì",
    "Y": "i dài",
    "Z": "dét",
}

# Fixed phrases: key (also the clip file name in a clip pack) → text, lower case as spoken mid-sentence.
PHRASES: dict[str, str] = {
    "moi_cong_dan": "mời công dân có số thứ tự",
    "den_quay_so": "đến quầy số",
    "xin_nhac_lai": "xin nhắc lại",
}

MAX_COUNTER = 999
_TICKET = re.compile(r"^([A-ZĐ]{0,3})[-\s]?(\d{1,6})$")

PartKind = Literal["phrase", "letter", "word", "pause"]
TicketReading = Literal["number", "digits"]


@dataclass(frozen=True)
class SpeechPart:
    """One unit of the spoken sentence, in order; a clip pack has one recording per key.

    ``kind`` "phrase": key in :data:`PHRASES`; "letter": key is the upper-case letter; "word": key is
    one number syllable; "pause": a short silence (key and text empty).
    """

    kind: PartKind
    key: str
    text: str


@dataclass(frozen=True)
class CallOut:
    """A call-out: ``speech`` for the synthesiser, ``display`` for the board, ``parts`` for clip packs."""

    ticket: str
    counter: int
    recall: bool
    speech: str
    display: str
    parts: tuple[SpeechPart, ...]


def parse_ticket(ticket: str) -> tuple[str, str]:
    """Split "A012" into ("A", "012"); accepts lower case, "A-012" and "A 012"; raises InvalidInput."""
    match = _TICKET.match(ticket.strip().upper())
    if match is None or any(letter not in LETTER_NAMES for letter in match.group(1)):
        raise InvalidInput(f"Số thứ tự không hợp lệ: {ticket!r}", code="ticket_invalid")
    return match.group(1), match.group(2)


def _ticket_parts(prefix: str, digits: str, style: NumberStyle, reading: TicketReading) -> list[SpeechPart]:
    parts = [SpeechPart("letter", letter, LETTER_NAMES[letter]) for letter in prefix]
    words = [DIGITS[int(d)] for d in digits] if reading == "digits" else number_words(int(digits), style)
    return parts + [SpeechPart("word", word, word) for word in words]


def read_ticket(ticket: str, style: NumberStyle = NORTHERN, reading: TicketReading = "number") -> str:
    """The spoken form of a ticket number: "A012" → "a mười hai"."""
    prefix, digits = parse_ticket(ticket)
    return " ".join(part.text for part in _ticket_parts(prefix, digits, style, reading))


def build_callout(
    ticket: str,
    counter: int,
    *,
    recall: bool = False,
    style: NumberStyle = NORTHERN,
    ticket_reading: TicketReading = "number",
) -> CallOut:
    """Build the call-out for ``ticket`` at ``counter``; ``recall`` prefixes "Xin nhắc lại"."""
    if isinstance(counter, bool) or not isinstance(counter, int) or not 1 <= counter <= MAX_COUNTER:
        raise InvalidInput(f"Số quầy không hợp lệ: {counter!r}", code="counter_invalid")
    prefix, digits = parse_ticket(ticket)
    normalised = prefix + digits
    parts: list[SpeechPart] = []
    if recall:
        parts += [SpeechPart("phrase", "xin_nhac_lai", PHRASES["xin_nhac_lai"]), SpeechPart("pause", "", "")]
    parts.append(SpeechPart("phrase", "moi_cong_dan", PHRASES["moi_cong_dan"]))
    parts += _ticket_parts(prefix, digits, style, ticket_reading)
    parts.append(SpeechPart("pause", "", ""))
    parts.append(SpeechPart("phrase", "den_quay_so", PHRASES["den_quay_so"]))
    parts += [SpeechPart("word", word, word) for word in number_words(counter, style)]

    speech = ""
    for part in parts:
        if part.kind == "pause":
            speech += ","
        else:
            speech += (" " if speech else "") + part.text
    speech = speech[0].upper() + speech[1:] + "."
    lead = "Xin nhắc lại: mời" if recall else "Mời"
    display = f"{lead} công dân có số thứ tự {normalised} đến quầy số {counter}"
    return CallOut(
        ticket=normalised, counter=counter, recall=recall, speech=speech, display=display, parts=tuple(parts)
    )
