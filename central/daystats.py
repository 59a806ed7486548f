"""Per ward, day and service: ticket counts, wait/service-time histograms and issued-per-hour, kept by
the summariser in the transaction that folds the events (central/summarizer.py).

A chunk re-derives each ward-day it touched from `central_tickets` (a few hundred rows), so a ticket
whose call or outcome arrives days later still moves its own day's row, and a replay cannot count twice.
Pages over many wards read these rows (about 5 a ward-day) instead of every ticket.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from central import histogram as h
from central.db import Cursor, Db

DDL = [
    "CREATE TABLE central_day_stats (ward TEXT NOT NULL, day TEXT NOT NULL, service TEXT NOT NULL, "
    "issued BIGINT NOT NULL, served BIGINT NOT NULL, no_show BIGINT NOT NULL, cancelled BIGINT NOT NULL, "
    "called BIGINT NOT NULL, wait_sum BIGINT NOT NULL, waits TEXT NOT NULL, services TEXT NOT NULL, "
    "hours TEXT NOT NULL, PRIMARY KEY (ward, day, service))",
    "CREATE INDEX central_day_stats_day ON central_day_stats (day)",
]
COLUMNS = "ward, day, service, issued, served, no_show, cancelled, called, wait_sum, waits, services, hours"


def rebuild(cur: Cursor, ward_days: Iterable[tuple[str, str]]) -> None:
    """Recompute the rows of these ward-days from their tickets."""
    for ward, day in sorted(set(ward_days)):
        tickets = cur.all("SELECT service, hour, waited_seconds, service_seconds, outcome FROM central_tickets "
                          "WHERE ward = ? AND day = ?", (ward, day))
        acc: dict[str, list[Any]] = {}
        for service, hour, waited, served_s, outcome in tickets:
            a = acc.setdefault(str(service), [0, 0, 0, 0, 0, 0, {}, {}, {}])
            a[0] += 1
            a[1] += outcome == "served"
            a[2] += outcome == "no_show"
            a[3] += outcome == "cancelled"
            if waited is not None:
                a[4] += 1
                a[5] += int(waited)
                b = h.bucket(int(waited))
                a[6][b] = a[6].get(b, 0) + 1
            if served_s is not None:
                b = h.bucket(int(served_s))
                a[7][b] = a[7].get(b, 0) + 1
            a[8][int(hour)] = a[8].get(int(hour), 0) + 1
        cur.run("DELETE FROM central_day_stats WHERE ward = ? AND day = ?", (ward, day))
        cur.many(f"INSERT INTO central_day_stats ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 [(ward, day, s, *a[:6], h.encode(a[6]), h.encode(a[7]), h.encode(a[8])) for s, a in acc.items()])


Ticket = tuple[Any, Any, Any, Any, Any, Any]  # day, hour, service, waited_seconds, service_seconds, outcome


class Delta:
    """What a summariser chunk changes, per (day, service): applied to the stored rows by read-modify-write,
    so the cost follows the chunk, not the size of the day."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], list[Any]] = {}

    def add(self, t: Ticket, sign: int) -> None:
        day, hour, service, waited, served_s, outcome = t
        a = self.rows.setdefault((str(day), str(service)), [0, 0, 0, 0, 0, 0, {}, {}, {}])
        a[0] += sign
        a[1] += sign * (outcome == "served")
        a[2] += sign * (outcome == "no_show")
        a[3] += sign * (outcome == "cancelled")
        if waited is not None:
            a[4] += sign
            a[5] += sign * int(waited)
            b = h.bucket(int(waited))
            a[6][b] = a[6].get(b, 0) + sign
        if served_s is not None:
            b = h.bucket(int(served_s))
            a[7][b] = a[7].get(b, 0) + sign
        a[8][int(hour)] = a[8].get(int(hour), 0) + sign

    def apply(self, cur: Cursor, ward: str) -> None:
        for (day, service), d in sorted(self.rows.items()):
            row = cur.first("SELECT issued, served, no_show, cancelled, called, wait_sum, waits, services, hours "
                            "FROM central_day_stats WHERE ward = ? AND day = ? AND service = ?", (ward, day, service))
            old: list[Any] = [0, 0, 0, 0, 0, 0, {}, {}, {}] if row is None else [
                *(int(x) for x in row[:6]), *(h.decode(str(x)) for x in row[6:])]
            new = [old[i] + d[i] for i in range(6)]
            hists = []
            for i in (6, 7, 8):
                merged = dict(old[i])
                for b, n in d[i].items():
                    merged[b] = merged.get(b, 0) + n
                hists.append(h.encode(merged))
            cur.run("DELETE FROM central_day_stats WHERE ward = ? AND day = ? AND service = ?", (ward, day, service))
            cur.run(f"INSERT INTO central_day_stats ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (ward, day, service, *new, *hists))


def rebuild_all(cur: Cursor) -> None:
    rebuild(cur, [(str(w), str(d)) for w, d in cur.all("SELECT DISTINCT ward, day FROM central_tickets")])


@dataclass
class DayRow:
    ward: str
    day: str
    service: str
    counts: tuple[int, int, int, int, int, int]  # issued, served, no_show, cancelled, called, wait_sum
    waits: str
    services: str
    hours: str


def load(db: Db, wards: Sequence[str] | None, start: str, end: str) -> list[DayRow]:
    where, params = "day >= ? AND day <= ?", [start, end]
    if wards is not None:
        where += f" AND ward IN ({', '.join('?' for _ in wards) or 'NULL'})"
        params.extend(wards)
    rows = db.query(f"SELECT {COLUMNS} FROM central_day_stats WHERE {where}", params)
    return [DayRow(str(w), str(d), str(s), (int(a), int(b), int(c), int(e), int(f), int(g)), str(x), str(y), str(z))
            for w, d, s, a, b, c, e, f, g, x, y, z in rows]
