"""Check-in decisions: what a scanned payload means, what it does to the queue, and its event.

Every decision (accepted or rejected) is one event and one minimised row in `checkins`. The raw
payload is never logged, stored, put in an event or published: an ID card is reduced to a keyed
hash (kept on the device only, never in an event) before anything is written; its last 4 digits
are shown on the screen from memory and never written.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
import re
import secrets
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from agent.checkin import appointment, cccd, codes, privacy
from agent.clock import Clock, rfc3339
from agent.core import Core
from agent.errors import KioskError, NotFound
from agent.ids import uuid7
from agent.queue.service import Issued
from agent.queue.tickets import FINAL, Ticket
from agent.settings import CheckinSettings
from agent.store import events

logger = logging.getLogger(__name__)

MAX_PAYLOAD = 4096


@dataclass(frozen=True, slots=True)
class Decision:
    kind: str
    accepted: bool
    code: str
    message: str
    ticket: dict[str, Any] | None = None
    display: dict[str, Any] = field(default_factory=dict)
    seq: int | None = None

    def public(self) -> dict[str, Any]:
        return {"kind": self.kind, "accepted": self.accepted, "code": self.code, "message": self.message,
                "ticket": self.ticket, "display": self.display, "seq": self.seq}


@dataclass(frozen=True, slots=True)
class Identity:
    """A resident identified by ID card: a session on the kiosk screen until a ticket, the "Không phải
    tôi" button, the screen's idle reset, the next card or `identity_ttl_seconds` ends it.

    `session` is handed to the first (kiosk) screen that claims it, never put on the live stream;
    only a ticket POST carrying it is linked. `id_masked` (last 4 digits) lives here in memory only."""

    resident_ref: str
    id_masked: str
    name_masked: str
    suggested_priority: str | None
    repeat: bool
    expires: datetime
    session: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    claimed: bool = False

    def public(self) -> dict[str, Any]:
        """What the greeting shows: masked, nothing that identifies the resident to an onlooker."""
        return {"session": self.session, "name_masked": self.name_masked, "id_masked": self.id_masked,
                "suggested_priority": self.suggested_priority, "repeat": self.repeat}


class CheckinService:
    def __init__(self, core: Core, settings: CheckinSettings, key: bytes, clock: Clock) -> None:
        self.core = core
        self.settings = settings
        self.key = key
        self.clock = clock
        self.tz = ZoneInfo(core.settings.queue.timezone)
        self.keys = {kid: appointment.load_public_key(text) for kid, text in settings.appointment_keys.items()}
        self.dossier_re = re.compile(settings.dossier_pattern)
        self.dossier_fmt = codes.DossierFormat.from_settings(settings)
        self._identity: Identity | None = None

    # Identity hand-off to the ticket screen ---------------------------------------------------------
    def pending_identity(self) -> Identity | None:
        if self._identity is not None and self._identity.expires <= self.clock():
            self._identity = None
        return self._identity

    def claim_identity(self) -> Identity | None:
        """The kiosk screen takes the new session once; a second claimer gets nothing."""
        identity = self.pending_identity()
        if identity is None or identity.claimed:
            return None
        self._identity = dataclasses.replace(identity, claimed=True)
        return self._identity

    def _matches(self, session: str | None) -> Identity | None:
        identity = self.pending_identity()
        if identity is None or not session or not hmac.compare_digest(identity.session.encode(), session.encode()):
            return None
        return identity

    def consume_identity(self, session: str | None) -> Identity | None:
        """A ticket is being taken: it ends the session, and is linked only if it carries that session."""
        identity = self._matches(session)
        self._identity = None
        return identity

    def end_identity(self, session: str) -> bool:
        """'Không phải tôi' or the screen's idle reset: drop the session so nothing gets linked."""
        if self._matches(session) is None:
            return False
        self._identity = None
        return True

    # Decisions -----------------------------------------------------------------------------------
    def handle(self, text: str) -> Decision:
        """Decide on one scanned payload. Never raises for bad input: a rejection is a decision."""
        try:
            if len(text) > MAX_PAYLOAD:
                return self._reject("unknown", "too_long", "Mã QR quá dài, không phải mã của bộ phận một cửa.")
            if appointment.looks_like_appointment(text):
                return self._appointment(text)
            if cccd.looks_like_id_card(text):
                return self._id_card(text)
            ticket_id = codes.parse_ticket(text)
            if ticket_id is not None:
                return self._ticket(ticket_id)
            dossier = codes.parse_dossier(text, self.dossier_re, self.dossier_fmt)
            if dossier is not None:
                return self._dossier(dossier)
            return self._reject("unknown", "unrecognised",
                                "Mã QR này không phải mã của bộ phận một cửa. Mời ông/bà lấy số trên màn hình.")
        except KioskError as exc:  # e.g. the office is closed or the disk is full: say so, lose nothing
            logger.warning("check-in refused: %s", exc.code)
            return self._reject("unknown", exc.code, exc.message)

    def _appointment(self, text: str) -> Decision:
        kind = "appointment"
        try:
            appt = appointment.decode_token(text, self.keys)
        except appointment.TokenRejected as exc:
            return self._reject(kind, exc.code, exc.message)
        if appt.ward != self.core.settings.device.ward:
            return self._reject(kind, "wrong_ward", "Lịch hẹn này thuộc phường/xã khác. Mời ông/bà kiểm tra lại "
                                "nơi hẹn hoặc đến quầy để được hỗ trợ.", booking=appt.booking)
        try:
            service = self.core.catalogue.service(appt.service)
        except NotFound:
            return self._reject(kind, "unknown_service", "Dịch vụ trong lịch hẹn không có ở đây. Mời đến quầy.",
                                booking=appt.booking)
        try:
            appointment.check_window(appt, self.clock(), self.tz, self.settings.early_minutes,
                                     self.settings.late_minutes)
        except appointment.TokenRejected as exc:
            return self._reject(kind, exc.code, exc.message, booking=appt.booking)
        existing = self._accepted_ticket("booking", appt.booking)
        if existing is not None:
            return self._status(kind, existing, "already_checked_in",
                                f"Lịch hẹn đã được xác nhận: số của ông/bà là {existing.number}.")
        issued = self._issue(kind, service.code, priority=self.settings.appointment_priority, source="appointment",
                             extra={"booking": appt.booking}, booking=appt.booking, ignore_cap=True)
        ticket = issued[0]
        return self._issued_decision(kind, issued, f"Đã xác nhận lịch hẹn. Số của ông/bà là {ticket.ticket.number} "
                                     f"({ticket.service_name}), được ưu tiên.")

    def _id_card(self, text: str) -> Decision:
        kind = "id_card"
        now = self.clock()
        try:
            card = cccd.parse_id_card(text, now.astimezone(self.tz).date())
        except cccd.CardInvalid:
            return self._reject(kind, "id_card_invalid",
                                "Không đọc được thẻ căn cước. Mời ông/bà giữ thẻ yên trước máy ảnh và thử lại.")
        ref = privacy.resident_ref(self.key, card.id_number)
        last4 = card.id_number[-4:]
        masked_name = privacy.mask_name(card.name)
        age = card.age_on(now.astimezone(self.tz).date())
        suggestion = self.settings.elderly_priority if age >= self.settings.elderly_age else None
        del card  # nothing below may touch the raw fields
        visits = int(self.core.db.conn.execute(
            "SELECT COUNT(*) FROM checkins WHERE resident_ref=? AND decision='accepted'", (ref,)).fetchone()[0])
        # The event (synced to central, shown on the live stream) carries no hash and no digits: central
        # cannot link visits, and a LAN client cannot collect pseudonyms. Repeat-visit knowledge stays here.
        data = {"kind": kind, "code": "identified", "repeat": visits > 0,
                "suggested_priority": suggestion,
                "message": "Xin chào! Mời ông/bà chọn dịch vụ trên màn hình."}
        with self.core.db.write() as conn:
            self._record(conn, kind, "accepted", "identified", resident_ref=ref,
                         masked_name=masked_name if self.settings.store_masked_name else None)
            event = events.append(conn, "checkin.accepted", data, now)
        # A new card replaces any earlier session: its resident may have walked away.
        self._identity = Identity(ref, privacy.mask_id("0" * 8 + last4), masked_name, suggestion, visits > 0,
                                  now + timedelta(seconds=self.settings.identity_ttl_seconds))
        return Decision(kind, True, "identified", str(data["message"]), None,
                        {"id_masked": self._identity.id_masked, "name_masked": masked_name,
                         "suggested_priority": suggestion, "repeat": visits > 0}, event.seq)

    def _ticket(self, ticket_id: str) -> Decision:
        try:
            ticket = self.core.queue.get(ticket_id)
        except NotFound:
            return self._reject("ticket", "unknown_ticket", "Không tìm thấy số này. Mời ông/bà lấy số mới.")
        if ticket.day != self.core.queue.today():
            return self._reject("ticket", "old_ticket", "Số này là của ngày khác. Mời ông/bà lấy số mới.")
        return self._status("ticket", ticket, "ticket_status", self._status_text(ticket))

    def _dossier(self, dossier: str) -> Decision:
        kind = "dossier"
        existing = self._accepted_ticket("dossier", dossier)
        if existing is not None and existing.state not in FINAL:
            return self._status(kind, existing, "already_checked_in",
                                f"Hồ sơ đã có số {existing.number}. {self._status_text(existing)}")
        issued = self._issue(kind, self.settings.dossier_service, priority=None, source="dossier",
                             extra={"dossier": dossier}, dossier=dossier)
        return self._issued_decision(kind, issued, f"Mời ông/bà chờ nhận kết quả hồ sơ. Số của ông/bà là "
                                     f"{issued[0].ticket.number}.")

    # Helpers -------------------------------------------------------------------------------------
    def _status_text(self, ticket: Ticket) -> str:
        if ticket.state == "waiting":
            ahead = sum(1 for t in self.core.queue.waiting(ticket.service) if t.arrival < ticket.arrival)
            return f"Số {ticket.number} đang chờ, còn {ahead} người trước ông/bà."
        if ticket.state in ("called", "serving") and ticket.counter:
            return f"Số {ticket.number}: mời ông/bà đến quầy số {ticket.counter}."
        if ticket.state == "held":
            return f"Số {ticket.number} đang được tạm giữ. Mời ông/bà đến quầy khi đã sẵn sàng."
        return f"Số {ticket.number} đã kết thúc. Nếu cần, mời ông/bà lấy số mới."

    def _accepted_ticket(self, column: str, value: str) -> Ticket | None:
        row = self.core.db.conn.execute(
            f"SELECT ticket_id FROM checkins WHERE {column}=? AND decision='accepted' AND ticket_id IS NOT NULL "
            "ORDER BY at DESC LIMIT 1", (value,)).fetchone()
        if row is None:
            return None
        try:
            ticket = self.core.queue.get(str(row[0]))
        except NotFound:
            return None
        return ticket if ticket.day == self.core.queue.today() else None

    def _issue(self, kind: str, service: str, priority: str | None, source: str, extra: dict[str, Any],
               booking: str | None = None, dossier: str | None = None, ignore_cap: bool = False
               ) -> tuple[Issued, int]:
        now = self.clock()
        holder: dict[str, int] = {}

        def record(conn: sqlite3.Connection, ticket: Ticket) -> None:
            self._record(conn, kind, "accepted", "ticket_issued", ticket_id=ticket.id, booking=booking,
                         dossier=dossier)
            data = {"kind": kind, "code": "ticket_issued", "ticket": ticket.id, "number": ticket.number,
                    "service": ticket.service, "message": f"Số của ông/bà là {ticket.number}."}
            holder["seq"] = events.append(conn, "checkin.accepted", data, now).seq

        issued = self.core.queue.take(service, priority=priority, source=source, extra=extra, ignore_cap=ignore_cap,
                                      also=record)
        return issued, holder["seq"]

    def _issued_decision(self, kind: str, issued: tuple[Issued, int], message: str) -> Decision:
        return Decision(kind, True, "ticket_issued", message, issued[0].public(), {}, issued[1])

    def _status(self, kind: str, ticket: Ticket, code: str, message: str) -> Decision:
        now = self.clock()
        data = {"kind": kind, "code": code, "ticket": ticket.id, "number": ticket.number, "state": ticket.state,
                "message": message}
        with self.core.db.write() as conn:
            self._record(conn, kind, "accepted", code, ticket_id=ticket.id)
            event = events.append(conn, "checkin.accepted", data, now)
        return Decision(kind, True, code, message, ticket.public(), {}, event.seq)

    def _reject(self, kind: str, code: str, message: str, booking: str | None = None) -> Decision:
        now = self.clock()
        data: dict[str, Any] = {"kind": kind, "code": code, "message": message}
        if booking is not None:
            data["booking"] = booking
        with self.core.db.write() as conn:
            self._record(conn, kind, "rejected", code, booking=booking)
            event = events.append(conn, "checkin.rejected", data, now)
        return Decision(kind, False, code, message, None, {}, event.seq)

    def _record(self, conn: sqlite3.Connection, kind: str, decision: str, code: str, **cols: Any) -> None:
        now = self.clock()
        expires = now + timedelta(days=self.settings.retention_days)
        # The booking id is unique among accepted rows; a rejection must not collide with it.
        row = {"ticket_id": None, "resident_ref": None, "id_last4": None, "masked_name": None, "booking": None,
               "dossier": None, **cols}
        if decision != "accepted":
            row["booking"] = None
        conn.execute(
            "INSERT INTO checkins(id, at, kind, decision, code, ticket_id, resident_ref, id_last4, masked_name, "
            "booking, dossier, expires_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (uuid7(), rfc3339(now), kind, decision, code, row["ticket_id"], row["resident_ref"], row["id_last4"],
             row["masked_name"], row["booking"], row["dossier"], rfc3339(expires)))

    def prune(self) -> int:
        """Delete check-in records past their retention; erase the personal columns of older tickets
        (their link to an ID card's hash) and feedback (the phone number), keeping the rest for reports."""
        now = self.clock()
        cutoff = rfc3339(now - timedelta(days=self.settings.personal_retention_days))
        with self.core.db.write() as conn:
            pruned = conn.execute("DELETE FROM checkins WHERE expires_at < ?", (rfc3339(now),)).rowcount
            conn.execute("UPDATE tickets SET resident = NULL WHERE resident IS NOT NULL AND arrived_at < ?", (cutoff,))
            conn.execute("UPDATE feedback SET phone = NULL WHERE phone IS NOT NULL AND at < ?", (cutoff,))
        return int(pruned)

