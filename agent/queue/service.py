"""The queue of the one-stop desk: issuing tickets and every counter action.

Each public method is one write transaction that changes the tickets and appends the matching
event; nothing else writes tickets. Refusals raise `Refused` / `NotFound` before anything is written.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from agent.clock import Clock, local_day, monotonic, rfc3339
from agent.errors import InvalidInput, NotFound, Refused
from agent.ids import uuid7
from agent.queue import estimates, ordering
from agent.queue.catalogue import Catalogue, Service
from agent.queue.tickets import (
    ACTIVE,
    CALLED,
    CANCELLED,
    COLUMNS,
    DONE,
    HELD,
    NO_SHOW,
    SERVING,
    STATE_NAMES_VI,
    WAITING,
    Ticket,
)
from agent.settings import QueueSettings
from agent.store import events
from agent.store.db import Database

logger = logging.getLogger(__name__)

AVERAGE_CACHE_S = 30.0
_NUMBER = re.compile(r"^[A-Za-z]{1,2}\d{3,4}$")


@dataclass(frozen=True, slots=True)
class Issued:
    ticket: Ticket
    service_name: str
    ahead: int
    wait_minutes: int
    seq: int

    def public(self) -> dict[str, Any]:
        return {**self.ticket.public(), "service_name": self.service_name, "ahead": self.ahead,
                "estimated_wait_minutes": self.wait_minutes, "seq": self.seq}


@dataclass(frozen=True, slots=True)
class CounterResult:
    """What a counter action did: the ticket now at the counter (if any) and what was closed."""

    action: str
    counter: int
    ticket: Ticket | None
    closed: Ticket | None = None
    note: str = ""

    def public(self) -> dict[str, Any]:
        return {"action": self.action, "counter": self.counter, "note": self.note,
                "ticket": self.ticket.public() if self.ticket else None,
                "closed": self.closed.public() if self.closed else None}


class QueueService:
    def __init__(self, db: Database, catalogue: Catalogue, settings: QueueSettings, clock: Clock) -> None:
        self.db = db
        self.catalogue = catalogue
        self.settings = settings
        self.clock = clock
        self.tz = ZoneInfo(settings.timezone)
        self._averages: dict[str, tuple[float, float]] = {}

    # Reading -------------------------------------------------------------------------------------
    def today(self, at: datetime | None = None) -> str:
        return local_day(at or self.clock(), self.tz).isoformat()

    def get(self, ref: str, conn: sqlite3.Connection | None = None) -> Ticket:
        """A ticket by id, or by today's number such as A012."""
        conn = conn or self.db.conn
        ref = ref.strip()
        if _NUMBER.match(ref):
            row = conn.execute(f"SELECT {COLUMNS} FROM tickets WHERE day=? AND number=?",
                               (self.today(), ref.upper())).fetchone()
        else:
            row = conn.execute(f"SELECT {COLUMNS} FROM tickets WHERE id=?", (ref,)).fetchone()
        if row is None:
            raise NotFound(f"Không tìm thấy số {ref} (no such ticket today)", code="unknown_ticket")
        return Ticket.from_row(row)

    def current(self, counter: int, conn: sqlite3.Connection | None = None) -> Ticket | None:
        conn = conn or self.db.conn
        # Literal states so SQLite can use the partial index tickets_active.
        row = conn.execute(f"SELECT {COLUMNS} FROM tickets WHERE counter=? AND state IN ('called', 'serving')",
                           (counter,)).fetchone()
        return None if row is None else Ticket.from_row(row)

    def waiting(self, service: str | None = None) -> list[Ticket]:
        sql = f"SELECT {COLUMNS} FROM tickets WHERE state=?"
        args: list[Any] = [WAITING]
        if service:
            sql += " AND service=?"
            args.append(service)
        rows = self.db.conn.execute(sql + " ORDER BY arrival", args).fetchall()
        return [Ticket.from_row(r) for r in rows]

    def held(self) -> list[Ticket]:
        rows = self.db.conn.execute(f"SELECT {COLUMNS} FROM tickets WHERE state=? ORDER BY arrival",
                                    (HELD,)).fetchall()
        return [Ticket.from_row(r) for r in rows]

    def estimate(self, service_code: str) -> dict[str, Any]:
        service = self.catalogue.service(service_code)
        conn = self.db.conn
        waiting = int(conn.execute("SELECT COUNT(*) FROM tickets WHERE state=? AND service=?",
                                   (WAITING, service.code)).fetchone()[0])
        avg = self._average_minutes(conn, service)
        wait = self._wait_minutes(conn, service, waiting)
        return {"service": service.code, "waiting": waiting, "average_minutes": round(avg, 1),
                "estimated_wait_minutes": wait}

    def snapshot(self, last_calls: int = 10) -> dict[str, Any]:
        """The whole queue as screens and `kiosk queue show` present it."""
        conn = self.db.conn
        now = self.clock()
        services = []
        for group in self.catalogue.groups:
            for service in group.services:
                est = self.estimate(service.code)
                services.append({
                    "code": service.code, "name": service.name, "group": group.name, "prefix": service.prefix,
                    "waiting": est["waiting"], "estimated_wait_minutes": est["estimated_wait_minutes"],
                    "open": self.catalogue.is_open(service, now, self.tz),
                })
        counters = []
        for counter in self.catalogue.counters:
            cur = self.current(counter.number, conn)
            counters.append({"number": counter.number, "name": counter.name,
                             "ticket": cur.public() if cur else None})
        rows = conn.execute(
            "SELECT seq, id, type, at, data FROM events WHERE type IN ('ticket.called', 'ticket.recalled') "
            "ORDER BY seq DESC LIMIT ?", (last_calls,)).fetchall()
        calls = [{"seq": e.seq, "at": e.at, "type": e.type, **e.data} for e in map(events.Event.from_row, rows)]
        return {"day": self.today(now), "services": services, "counters": counters,
                "waiting": [t.public() for t in self.waiting()], "held": [t.public() for t in self.held()],
                "last_calls": calls}

    # Issuing ---------------------------------------------------------------------------------------
    def take(self, service_code: str, priority: str | None = None, source: str = "kiosk",
             resident: str | None = None, extra: dict[str, Any] | None = None, ignore_cap: bool = False,
             also: Callable[[sqlite3.Connection, Ticket], None] | None = None) -> Issued:
        """Issue a ticket, or refuse with the reason a resident can understand.

        `also` runs inside the same transaction once the ticket exists (a check-in records itself
        atomically with the ticket it produced); `ignore_cap` honours a booked appointment even when
        walk-in numbers for the day are exhausted.
        """
        service = self.catalogue.service(service_code)
        if priority is not None:
            self.catalogue.priority(priority)
        if source not in ("kiosk", "cli", "api", "appointment", "checkin", "dossier"):
            raise InvalidInput(f"unknown ticket source {source!r}")
        now = self.clock()
        local = now.astimezone(self.tz)
        if self.settings.enforce_hours and not self.catalogue.is_open(service, now, self.tz):
            hours = self.catalogue.hours_of(service).today_text(local)
            raise Refused(f"Dịch vụ «{service.name}» hiện ngoài giờ làm việc (hôm nay: {hours}).",
                          code="closed")
        day = local.date().isoformat()
        with self.db.write() as conn:
            self._check_clock(conn, now)
            # Refusing rolls the whole transaction back, the count's increment with it.
            if _bump(conn, day, f"service:{service.code}") > service.daily_cap and not ignore_cap:
                raise Refused(f"Dịch vụ «{service.name}» đã hết số hôm nay ({service.daily_cap} số). "
                              "Mời quay lại vào ngày làm việc tiếp theo.", code="cap_reached")
            number = f"{service.prefix}{_bump(conn, day, f'prefix:{service.prefix}'):03d}"
            ticket_id = uuid7(int(now.timestamp() * 1000))
            stamp = rfc3339(now)
            data: dict[str, Any] = {"ticket": ticket_id, "number": number, "service": service.code,
                                    "priority": priority, "source": source, "day": day}
            if extra:
                data.update(extra)
            event = events.append(conn, "ticket.issued", data, now, stamp)
            conn.execute(
                "INSERT INTO tickets(id, day, number, prefix, service, first_service, priority, state, source, "
                "resident, arrived_at, arrival) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (ticket_id, day, number, service.prefix, service.code, service.code, priority, WAITING, source,
                 resident, stamp, event.seq))
            ahead = estimates.people_ahead(conn, service.code, event.seq, priority is not None)
            wait = self._wait_minutes(conn, service, ahead)
            ticket = Ticket(id=ticket_id, day=day, number=number, service=service.code, first_service=service.code,
                            priority=priority, state=WAITING, counter=None, recalls=0, source=source,
                            arrived_at=stamp, arrival=event.seq, called_at=None, last_called_at=None,
                            serving_at=None, finished_at=None)
            if also is not None:
                also(conn, ticket)
        return Issued(ticket=ticket, service_name=service.name, ahead=ahead, wait_minutes=wait, seq=event.seq)

    def cancel(self, ref: str, reason: str = "resident") -> Ticket:
        now = self.clock()
        with self.db.write() as conn:
            ticket = self.get(ref, conn)
            self._require(ticket, (WAITING, HELD), "hủy")
            self._finish(conn, ticket, CANCELLED, now, {"reason": reason})
            return self.get(ticket.id, conn)

    # Counter actions ----------------------------------------------------------------------------
    def next(self, counter: int) -> CounterResult:
        """Close what the counter has (serving → done, called → no-show) and call the next ticket."""
        services = [s.code for s in self.catalogue.services_of_counter(counter)]
        now = self.clock()
        with self.db.write() as conn:
            self._sweep(conn, now)
            closed = self._close_current(conn, counter, now)
            chosen = ordering.choose_next(conn, counter, services, self.settings.priority_mode,
                                          self.settings.priority_every)
            if chosen is None:
                return CounterResult("next", counter, None, closed, note="Không có ai đang chờ.")
            ticket = self._call(conn, counter, chosen, now, {})
            return CounterResult("next", counter, ticket, closed)

    def call(self, counter: int, ref: str, reason: str) -> CounterResult:
        """Call a specific ticket out of order; the reason is recorded in the event (audit)."""
        reason = reason.strip()
        if len(reason) < 3:
            raise InvalidInput("Gọi số cụ thể cần ghi lý do (a reason of 3+ characters is required).",
                               code="reason_required")
        served = {s.code for s in self.catalogue.services_of_counter(counter)}
        now = self.clock()
        with self.db.write() as conn:
            ticket = self.get(ref, conn)
            self._require(ticket, (WAITING, HELD), "gọi")
            if ticket.service not in served:
                raise Refused(f"Quầy {counter} không phục vụ dịch vụ của số {ticket.number}.",
                              code="wrong_counter")
            closed = self._close_current(conn, counter, now)
            called = self._call(conn, counter, ticket, now, {"reason": reason[:200], "out_of_order": True})
            return CounterResult("call", counter, called, closed)

    def recall(self, counter: int) -> CounterResult:
        now = self.clock()
        with self.db.write() as conn:
            ticket = self._active(conn, counter, (CALLED,), "gọi lại")
            limit = self.settings.auto_no_show_recalls
            if limit and ticket.recalls >= limit:
                self._finish(conn, ticket, NO_SHOW, now, {"counter": counter, "reason": "max_recalls"})
                return CounterResult("recall", counter, None, self.get(ticket.id, conn),
                                     note=f"Số {ticket.number} đã gọi lại {limit} lần: ghi vắng mặt.")
            conn.execute("UPDATE tickets SET recalls = recalls + 1, last_called_at=? WHERE id=?",
                         (rfc3339(now), ticket.id))
            events.append(conn, "ticket.recalled", {**ticket.ref(), "counter": counter,
                                                    "recalls": ticket.recalls + 1}, now)
            return CounterResult("recall", counter, self.get(ticket.id, conn))

    def start(self, counter: int) -> CounterResult:
        now = self.clock()
        with self.db.write() as conn:
            ticket = self._active(conn, counter, (CALLED,), "bắt đầu phục vụ")
            conn.execute("UPDATE tickets SET state=?, serving_at=? WHERE id=?", (SERVING, rfc3339(now), ticket.id))
            events.append(conn, "ticket.serving", {**ticket.ref(), "counter": counter}, now)
            return CounterResult("start", counter, self.get(ticket.id, conn))

    def done(self, counter: int) -> CounterResult:
        now = self.clock()
        with self.db.write() as conn:
            ticket = self._active(conn, counter, ACTIVE, "hoàn thành")
            self._finish(conn, ticket, DONE, now, {"counter": counter})
            self._averages.pop(ticket.service, None)
            return CounterResult("done", counter, None, self.get(ticket.id, conn))

    def no_show(self, counter: int) -> CounterResult:
        now = self.clock()
        with self.db.write() as conn:
            ticket = self._active(conn, counter, (CALLED,), "ghi vắng mặt")
            self._finish(conn, ticket, NO_SHOW, now, {"counter": counter, "reason": "counter"})
            return CounterResult("no-show", counter, None, self.get(ticket.id, conn))

    def transfer(self, counter: int, service_code: str) -> CounterResult:
        """Send the counter's resident to another service; they keep their place by arrival."""
        target = self.catalogue.service(service_code)
        now = self.clock()
        with self.db.write() as conn:
            ticket = self._active(conn, counter, ACTIVE, "chuyển")
            if target.code == ticket.service:
                raise Refused(f"Số {ticket.number} đã ở dịch vụ «{target.name}».", code="same_service")
            conn.execute("UPDATE tickets SET state=?, service=?, counter=NULL, recalls=0 WHERE id=?",
                         (WAITING, target.code, ticket.id))
            events.append(conn, "ticket.transferred", {**ticket.ref(), "counter": counter, "from": ticket.service,
                                                       "to": target.code}, now)
            return CounterResult("transfer", counter, None, self.get(ticket.id, conn),
                                 note=f"Đã chuyển sang «{target.name}».")

    def hold(self, counter: int) -> CounterResult:
        """Put the counter's resident aside (e.g. to fetch a paper); `return_` puts them back in line."""
        now = self.clock()
        with self.db.write() as conn:
            ticket = self._active(conn, counter, ACTIVE, "tạm giữ")
            conn.execute("UPDATE tickets SET state=?, counter=NULL WHERE id=?", (HELD, ticket.id))
            events.append(conn, "ticket.held", {**ticket.ref(), "counter": counter}, now)
            return CounterResult("hold", counter, None, self.get(ticket.id, conn))

    def return_(self, ref: str) -> Ticket:
        now = self.clock()
        with self.db.write() as conn:
            ticket = self.get(ref, conn)
            self._require(ticket, (HELD,), "đưa lại hàng chờ")
            conn.execute("UPDATE tickets SET state=?, recalls=0 WHERE id=?", (WAITING, ticket.id))
            events.append(conn, "ticket.returned", ticket.ref(), now)
            return self.get(ticket.id, conn)

    def sweep(self) -> int:
        """Apply automatic no-shows and close yesterday's leftovers; returns how many changed."""
        with self.db.write() as conn:
            return self._sweep(conn, self.clock())

    # Internals -------------------------------------------------------------------------------------
    def _average_minutes(self, conn: sqlite3.Connection, service: Service) -> float:
        """Mean recent service time, cached briefly: an estimate need not cost a query per ticket."""
        now = monotonic()
        cached = self._averages.get(service.code)
        if cached is not None and now - cached[0] < AVERAGE_CACHE_S:
            return cached[1]
        value = estimates.average_service_minutes(conn, service, self.settings.estimate_window)
        self._averages[service.code] = (now, value)
        return value

    def _wait_minutes(self, conn: sqlite3.Connection, service: Service, ahead: int) -> int:
        if ahead <= 0:
            return 0
        return estimates.estimate_wait_minutes(ahead, self._average_minutes(conn, service), service)

    def _check_clock(self, conn: sqlite3.Connection, now: datetime) -> None:
        """A clock earlier than the log's latest time is wrong (a box booted believing it is yesterday):
        tickets issued under it would be cancelled as yesterday's when NTP corrects it, and their numbers
        given out again. Refuse until the clock is right; numbering then resumes where it stopped."""
        mark = events.high_water(conn)
        if mark is None:
            return
        latest = _parse(mark)
        if now < latest - timedelta(seconds=self.settings.clock_tolerance_seconds):
            shown = latest.astimezone(self.tz).strftime("%H:%M ngày %d/%m/%Y")
            raise Refused(f"Đồng hồ của máy chưa đúng (sớm hơn lần ghi cuối lúc {shown}). Chưa thể phát số: "
                          "vui lòng chờ máy đồng bộ giờ hoặc báo cán bộ kỹ thuật.", code="clock_behind")

    def _require(self, ticket: Ticket, states: tuple[str, ...], verb: str) -> None:
        if ticket.state not in states:
            raise Refused(f"Không thể {verb} số {ticket.number}: số này {STATE_NAMES_VI[ticket.state]}.",
                          code="wrong_state")

    def _active(self, conn: sqlite3.Connection, counter: int, states: tuple[str, ...], verb: str) -> Ticket:
        self.catalogue.counter(counter)
        ticket = self.current(counter, conn)
        if ticket is None:
            raise Refused(f"Quầy {counter} chưa gọi số nào để {verb}.", code="no_current_ticket")
        self._require(ticket, states, verb)
        return ticket

    def _call(self, conn: sqlite3.Connection, counter: int, ticket: Ticket, now: datetime,
              extra: dict[str, Any]) -> Ticket:
        stamp = rfc3339(now)
        conn.execute("UPDATE tickets SET state=?, counter=?, recalls=0, called_at=COALESCE(called_at, ?), "
                     "last_called_at=? WHERE id=?", (CALLED, counter, stamp, stamp, ticket.id))
        ordering.record_call(conn, counter, ticket)
        waited = max(0, int((now - _parse(ticket.arrived_at)).total_seconds()))
        events.append(conn, "ticket.called", {**ticket.ref(), "counter": counter, "waited_seconds": waited,
                                              **extra}, now)
        return self.get(ticket.id, conn)

    def _close_current(self, conn: sqlite3.Connection, counter: int, now: datetime) -> Ticket | None:
        self.catalogue.counter(counter)
        ticket = self.current(counter, conn)
        if ticket is None:
            return None
        if ticket.state == SERVING:
            self._finish(conn, ticket, DONE, now, {"counter": counter})
        else:
            self._finish(conn, ticket, NO_SHOW, now, {"counter": counter, "reason": "next_pressed"})
        return self.get(ticket.id, conn)

    def _finish(self, conn: sqlite3.Connection, ticket: Ticket, state: str, now: datetime,
                extra: dict[str, Any]) -> None:
        conn.execute("UPDATE tickets SET state=?, finished_at=? WHERE id=?", (state, rfc3339(now), ticket.id))
        data = {**ticket.ref(), **extra}
        if state == DONE and ticket.serving_at:
            data["service_seconds"] = int((now - _parse(ticket.serving_at)).total_seconds())
        events.append(conn, f"ticket.{state}", data, now)

    def _sweep(self, conn: sqlite3.Connection, now: datetime) -> int:
        changed = 0
        today = self.today(now)
        stale = conn.execute(f"SELECT {COLUMNS} FROM tickets WHERE day<? AND state IN (?, ?, ?, ?)",
                             (today, WAITING, HELD, CALLED, SERVING)).fetchall()
        for row in stale:
            ticket = Ticket.from_row(row)
            state = DONE if ticket.state == SERVING else CANCELLED
            self._finish(conn, ticket, state, now, {"reason": "day_ended"})
            changed += 1
        minutes = self.settings.auto_no_show_minutes
        if minutes:
            cutoff = rfc3339(now - timedelta(minutes=minutes))
            late = conn.execute(f"SELECT {COLUMNS} FROM tickets WHERE state=? AND last_called_at<?",
                                (CALLED, cutoff)).fetchall()
            for row in late:
                ticket = Ticket.from_row(row)
                self._finish(conn, ticket, NO_SHOW, now, {"counter": ticket.counter, "reason": "timeout"})
                changed += 1
        return changed


def _bump(conn: sqlite3.Connection, day: str, key: str) -> int:
    """Increment one of the day's counters inside the caller's transaction; the new value."""
    row = conn.execute("INSERT INTO daily_counts(day, key, value) VALUES (?, ?, 1) "
                       "ON CONFLICT(day, key) DO UPDATE SET value = value + 1 RETURNING value", (day, key)).fetchone()
    return int(row[0])


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
