"""Satisfaction ratings and residents' feedback: each row is written with its event in one transaction.

A rating belongs to one ticket (the database refuses a second one) and to the counter and officer
that served it when known. Feedback may carry a phone number for a call back; the number stays in
the local table and never enters an event, so it is never published.
"""

from __future__ import annotations

import re
import sqlite3
import unicodedata
from dataclasses import dataclass
from typing import Any, Literal

from agent.clock import Clock, rfc3339
from agent.errors import InvalidInput, Refused
from agent.ids import uuid7
from agent.queue.service import QueueService
from agent.queue.tickets import DONE, SERVING
from agent.store import events

MAX_FEEDBACK_CHARS = 2000
MIN_FEEDBACK_CHARS = 5
MAX_COMMENT_CHARS = 500
FEEDBACK_KINDS: dict[str, str] = {"phan-anh": "Phản ánh", "kien-nghi": "Kiến nghị"}
RATING_LABELS: dict[int, tuple[str, ...]] = {
    3: ("Không hài lòng", "Bình thường", "Hài lòng"),
    4: ("Không hài lòng", "Chưa hài lòng", "Hài lòng", "Rất hài lòng"),
    5: ("Rất không hài lòng", "Không hài lòng", "Bình thường", "Hài lòng", "Rất hài lòng"),
}
# Vietnamese mobile and landline numbers, national (0…) or international (+84…) form.
_PHONE = re.compile(r"^(?:0|\+84)\d{9,10}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean_text(text: str) -> str:
    """NFC, no control characters but newlines, trimmed: what a resident typed, nothing hidden."""
    return _CONTROL.sub("", unicodedata.normalize("NFC", text)).strip()


def normalise_phone(phone: str) -> str:
    digits = re.sub(r"[\s.\-()]", "", phone)
    if not _PHONE.match(digits):
        raise InvalidInput("Số điện thoại không hợp lệ: nhập 10 chữ số, ví dụ 0912 345 678.", code="bad_phone")
    return digits


@dataclass(frozen=True, slots=True)
class Rating:
    id: str
    ticket: str
    number: str
    counter: int | None
    officer: str | None
    score: int
    scale: int
    seq: int

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "ticket": self.ticket, "number": self.number, "counter": self.counter,
                "officer": self.officer, "score": self.score, "scale": self.scale, "seq": self.seq,
                "label": RATING_LABELS[self.scale][self.score - 1]}


class FeedbackDesk:
    """Writes ratings and feedback; refusals raise before anything is written."""

    def __init__(self, queue: QueueService, scale: Literal[3, 4, 5], clock: Clock) -> None:
        self.queue = queue
        self.scale = scale
        self.clock = clock

    def rate(self, ticket_ref: str, score: int, comment: str | None, officer: str | None) -> Rating:
        if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= self.scale:
            raise InvalidInput(f"Mức đánh giá phải từ 1 đến {self.scale}.", code="bad_score")
        comment = clean_text(comment) if comment else None
        if comment and len(comment) > MAX_COMMENT_CHARS:
            raise InvalidInput(f"Góp ý quá dài (tối đa {MAX_COMMENT_CHARS} ký tự).", code="too_long")
        now = self.clock()
        db = self.queue.db
        try:
            with db.write() as conn:
                ticket = self.queue.get(ticket_ref, conn)
                if ticket.state not in (SERVING, DONE):
                    raise Refused(f"Số {ticket.number} chưa được phục vụ nên chưa thể đánh giá.", code="not_served")
                if conn.execute("SELECT 1 FROM ratings WHERE ticket=?", (ticket.id,)).fetchone():
                    raise Refused(f"Số {ticket.number} đã được đánh giá rồi. Xin cảm ơn!", code="already_rated")
                rating_id = uuid7(int(now.timestamp() * 1000))
                data: dict[str, Any] = {"rating": rating_id, **ticket.ref(), "counter": ticket.counter,
                                        "officer": officer, "score": score, "scale": self.scale}
                if comment:
                    data["comment"] = comment
                event = events.append(conn, "rating.submitted", data, now)
                conn.execute(
                    "INSERT INTO ratings(id, ticket, number, service, counter, officer, score, scale, comment, at, seq)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (rating_id, ticket.id, ticket.number, ticket.service, ticket.counter, officer, score,
                     self.scale, comment, rfc3339(now), event.seq))
        except sqlite3.IntegrityError as exc:  # another process rated the same ticket a moment ago
            raise Refused("Số này đã được đánh giá rồi. Xin cảm ơn!", code="already_rated") from exc
        return Rating(rating_id, ticket.id, ticket.number, ticket.counter, officer, score, self.scale, event.seq)

    def submit(self, kind: str, text: str, phone: str | None, ticket_ref: str | None) -> dict[str, Any]:
        if kind not in FEEDBACK_KINDS:
            raise InvalidInput("Loại góp ý phải là phản ánh hoặc kiến nghị.", code="bad_kind")
        text = clean_text(text)
        if len(text) < MIN_FEEDBACK_CHARS:
            raise InvalidInput("Xin viết nội dung phản ánh, kiến nghị (ít nhất 5 ký tự).", code="text_required")
        if len(text) > MAX_FEEDBACK_CHARS:
            raise InvalidInput(f"Nội dung quá dài (tối đa {MAX_FEEDBACK_CHARS:,} ký tự).".replace(",", "."),
                               code="too_long")
        phone = normalise_phone(phone) if phone and phone.strip() else None
        now = self.clock()
        with self.queue.db.write() as conn:
            ticket = self.queue.get(ticket_ref, conn).id if ticket_ref else None
            feedback_id = uuid7(int(now.timestamp() * 1000))
            # The phone number stays local: events are published and must not carry personal data.
            data: dict[str, Any] = {"feedback": feedback_id, "kind": kind, "text": text,
                                    "has_phone": phone is not None, "ticket": ticket}
            event = events.append(conn, "feedback.submitted", data, now)
            conn.execute("INSERT INTO feedback(id, kind, text, phone, ticket, at, seq) VALUES (?,?,?,?,?,?,?)",
                         (feedback_id, kind, text, phone, ticket, rfc3339(now), event.seq))
        return {"id": feedback_id, "kind": kind, "kind_name": FEEDBACK_KINDS[kind], "text": text,
                "has_phone": phone is not None, "seq": event.seq}
