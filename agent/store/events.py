"""The append-only event log: the single source of truth every consumer reads, and the outbox.

An event is appended inside the same transaction as the state change it records; `seq` comes from
SQLite's AUTOINCREMENT inside that transaction, so it is gapless and never reused (a rolled-back
transaction rolls its number back too).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agent.clock import rfc3339
from agent.errors import Refused
from agent.ids import uuid7

ENVELOPE_VERSION = 1
HIGH_WATER_KEY = "clock_high_water"

EVENT_TYPES = frozenset({
    "ticket.issued", "ticket.called", "ticket.recalled", "ticket.serving", "ticket.transferred",
    "ticket.done", "ticket.no_show", "ticket.cancelled", "ticket.held", "ticket.returned",
    "checkin.accepted", "checkin.rejected", "call.requested", "call.answered", "call.ended",
    "call.missed", "rating.submitted", "feedback.submitted", "device.fault", "device.recovered",
    "config.applied", "agent.started",
    "printer.fault", "printer.recovered", "ticket.print_requested",
    "storage.recovered",
})


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    id: str
    type: str
    at: str
    data: dict[str, Any]

    def envelope(self, ward: str, kiosk: str, log: str = "") -> dict[str, Any]:
        """The published form; `log` (the event log's id) only when the database has one."""
        env = {"v": ENVELOPE_VERSION, "id": self.id, "kiosk": kiosk, "ward": ward, "seq": self.seq,
               "type": self.type, "at": self.at, "data": self.data}
        if log:
            env["log"] = log
        return env

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Event:
        return cls(seq=row["seq"], id=row["id"], type=row["type"], at=row["at"], data=json.loads(row["data"]))


# What gives way first when the disk nears full, so the reserve goes to tickets and calls.
LOW_VALUE_TYPES = frozenset({"rating.submitted", "feedback.submitted", "ticket.print_requested"})
_refusing_low_value: set[int] = set()  # id() of connections whose disk is under the reserve


def refuse_low_value(conn: sqlite3.Connection, refuse: bool) -> None:
    """Set by the disk guard: under the reserve, low-value events are refused on this connection."""
    (_refusing_low_value.add if refuse else _refusing_low_value.discard)(id(conn))


def append(conn: sqlite3.Connection, type_: str, data: dict[str, Any], at: datetime, stamp: str | None = None) -> Event:
    """Append one event; must run inside the caller's write transaction (`stamp`: `at` already formatted)."""
    if type_ not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type_!r}")
    if type_ in LOW_VALUE_TYPES and id(conn) in _refusing_low_value:
        raise Refused("Bộ nhớ của máy sắp đầy: tạm thời chưa nhận đánh giá, góp ý hay in lại. Xin cảm ơn!",
                      code="disk_low")
    if not conn.in_transaction:
        raise RuntimeError("events are appended inside the state change's transaction")
    event_id = uuid7(int(at.timestamp() * 1000))
    stamp = stamp or rfc3339(at)
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    cur = conn.execute("INSERT INTO events(id, type, at, data) VALUES (?, ?, ?, ?)", (event_id, type_, stamp, body))
    seq = cur.lastrowid
    assert seq is not None
    # The latest time the log has seen (RFC 3339 UTC strings of one format sort as times): the queue
    # refuses to issue under a clock earlier than this (a box booting with yesterday's time).
    conn.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE "
                 "SET value = max(value, excluded.value)", (HIGH_WATER_KEY, stamp))
    return Event(seq=seq, id=event_id, type=type_, at=stamp, data=data)


def since(conn: sqlite3.Connection, after_seq: int, limit: int = 1000) -> list[Event]:
    rows = conn.execute("SELECT seq, id, type, at, data FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                        (after_seq, limit)).fetchall()
    return [Event.from_row(r) for r in rows]


def last_seq(conn: sqlite3.Connection) -> int:
    # sqlite_sequence keeps the high-water mark even after pruning old events.
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name='events'").fetchone()
    return 0 if row is None else int(row[0])


def log_id(conn: sqlite3.Connection) -> str:
    """This database's event-log id ("" for a database that held events before ids existed)."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'log'").fetchone()
    return "" if row is None else str(row[0])


def id_at(conn: sqlite3.Connection, seq: int) -> str | None:
    row = conn.execute("SELECT id FROM events WHERE seq = ?", (seq,)).fetchone()
    return None if row is None else str(row[0])


def high_water(conn: sqlite3.Connection) -> str | None:
    """The latest event time ever logged (RFC 3339), pruned events included."""
    row = conn.execute("SELECT value FROM meta WHERE key=?", (HIGH_WATER_KEY,)).fetchone()
    return None if row is None else str(row[0])
