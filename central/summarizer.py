"""The follower of `central_events` that keeps the KPI summaries up to date, incrementally.

Per kiosk it reads the events after its cursor up to the kiosk's ack (the gapless high-water mark the
ingest moves in the same transaction that stored them), folds them into `central_tickets` and
`central_daily`, and moves the cursor in the same transaction: a crash repeats nothing and skips nothing.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from central import contract as c
from central import daystats
from central.db import Cursor, Db

logger = logging.getLogger(__name__)

LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")
CHUNK = 5000


def local_time(at: str) -> datetime:
    return datetime.fromisoformat(at.replace("Z", "+00:00")).astimezone(LOCAL)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


class Summarizer:
    def __init__(self, db: Db, chunk: int = CHUNK) -> None:
        self.db = db
        self.chunk = chunk

    def pending(self) -> list[tuple[str, str, str, int, int]]:
        """(ward, kiosk, log, cursor, ack) of every kiosk event log whose ack is ahead of the summaries."""
        rows = self.db.query(
            "SELECT a.ward, a.kiosk, a.log, COALESCE(s.seq, 0), a.seq FROM central_acks a "
            "LEFT JOIN central_summary_cursor s ON s.ward = a.ward AND s.kiosk = a.kiosk AND s.log = a.log "
            "WHERE a.seq > COALESCE(s.seq, 0) ORDER BY a.ward, a.kiosk, a.log")
        return [(str(w), str(k), str(lg), int(cur), int(ack)) for w, k, lg, cur, ack in rows]

    def run_once(self) -> int:
        """Summarise everything acknowledged so far; returns the number of events folded in."""
        done = 0
        for ward, kiosk, log, cursor, ack in self.pending():
            while cursor < ack:
                upto = min(ack, cursor + self.chunk)
                done += self._fold(ward, kiosk, log, cursor, upto)
                cursor = upto
        return done

    def _fold(self, ward: str, kiosk: str, log: str, after: int, upto: int) -> int:
        with self.db.transaction() as cur:
            events = cur.all("SELECT type, at, data FROM central_events WHERE ward = ? AND kiosk = ? AND log = ? "
                             "AND seq > ? AND seq <= ? ORDER BY seq", (ward, kiosk, log, after, upto))
            self._apply(cur, ward, kiosk, events)
            cur.run("INSERT INTO central_summary_cursor (ward, kiosk, log, seq) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (ward, kiosk, log) DO UPDATE SET seq = excluded.seq", (ward, kiosk, log, upto))
        return len(events)

    def _apply(self, cur: Cursor, ward: str, kiosk: str, events: list[tuple[Any, ...]]) -> None:
        # Tickets issued in this chunk are folded here and inserted whole (one statement a ticket);
        # only tickets issued in an earlier chunk need the UPDATEs below.
        fresh: dict[str, list[Any]] = {}  # ticket → [day, hour, service, counter, waited, service_s, outcome]
        called: list[tuple[Any, ...]] = []
        ended: list[tuple[Any, ...]] = []
        daily: dict[tuple[str, str, str, int], list[int]] = {}

        def count(day: str, metric: str, service: str, counter: int, total: int) -> None:
            slot = daily.setdefault((day, metric, service, counter), [0, 0])
            slot[0] += 1
            slot[1] += total

        def end(ticket: str, outcome: str, seconds: int | None) -> None:
            row = fresh.get(ticket)
            if row is None:
                ended.append((outcome, seconds, ward, kiosk, ticket))
            else:
                row[5], row[6] = seconds, outcome

        for type_, at, raw in events:
            if not (type_.startswith(("ticket.", "rating.", "feedback.", "call."))):
                continue
            try:
                data = json.loads(raw)
                when = local_time(str(at))
            except (ValueError, TypeError):
                logger.warning("summaries: unreadable %s event of %s/%s skipped", type_, ward, kiosk)
                continue
            if not isinstance(data, dict):
                continue
            ticket = _str(data.get("ticket"))
            day = when.date().isoformat()
            if type_ == c.TICKET_ISSUED and ticket:
                fresh.setdefault(ticket, [_str(data.get("day")) or day, when.hour, _str(data.get("service")),
                                          None, None, None, None])
            elif type_ == c.TICKET_CALLED and ticket:
                counter, waited = _int(data.get("counter")), _int(data.get("waited_seconds"))
                row = fresh.get(ticket)
                if row is None:
                    called.append((counter, waited, ward, kiosk, ticket))
                elif row[4] is None:
                    row[3], row[4] = counter, waited
            elif type_ == c.TICKET_DONE and ticket:
                end(ticket, "served", _int(data.get("service_seconds")))
            elif type_ == c.TICKET_NO_SHOW and ticket:
                end(ticket, "no_show", None)
            elif type_ == c.TICKET_CANCELLED and ticket:
                end(ticket, "cancelled", None)
            elif type_ == c.RATING_SUBMITTED:
                scale, score = _int(data.get("scale")), _int(data.get("score"))
                if scale in (3, 4, 5) and score is not None and 1 <= score <= scale:
                    service, counter = _str(data.get("service")), _int(data.get("counter")) or 0
                    count(day, f"rating.{scale}", service, counter, score)
                    count(day, f"rating.{scale}.{score}", service, counter, score)
                    count(day, f"ward.rating.{scale}.{score}", "", 0, score)  # what the pages read
            elif type_ == c.FEEDBACK_SUBMITTED:
                count(day, "feedback", "", 0, 0)
            elif type_ == c.CALL_ANSWERED:
                count(day, "call.answered", _str(data.get("service")), 0, _int(data.get("ring_seconds")) or 0)
            elif type_ == c.CALL_MISSED:
                count(day, "call.missed", _str(data.get("service")), 0, 0)
        # Day summaries move by the chunk's difference: older tickets' state before and after it.
        delta = daystats.Delta()
        for row in fresh.values():
            delta.add((row[0], row[1], row[2], row[4], row[5], row[6]), 1)
        older = sorted({t for *_, t in called} | {t for *_, t in ended})
        before: dict[str, list[Any]] = {}
        for i in range(0, len(older), 500):
            part = older[i:i + 500]
            marks = ", ".join("?" for _ in part)
            for t, *state in cur.all(
                    "SELECT ticket, day, hour, service, waited_seconds, service_seconds, outcome FROM central_tickets "
                    f"WHERE ward = ? AND kiosk = ? AND ticket IN ({marks})", (ward, kiosk, *part)):
                before[str(t)] = state
        after = {t: list(state) for t, state in before.items()}
        for _counter, waited, _w, _k, t in called:
            if t in after and after[t][3] is None:
                after[t][3] = waited
        for outcome, seconds, _w, _k, t in ended:
            if t in after:
                after[t][4], after[t][5] = seconds, outcome
        for t, state in before.items():
            delta.add(tuple(state), -1)
            delta.add(tuple(after[t]), 1)
        delta.apply(cur, ward)
        # Then calls, then outcomes of older tickets: a ticket's events keep their order in one kiosk's log.
        cur.many("INSERT INTO central_tickets (ward, kiosk, ticket, day, hour, service, counter, waited_seconds, "
                 "service_seconds, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                 "ON CONFLICT (ward, kiosk, ticket) DO NOTHING", [(ward, kiosk, t, *row) for t, row in fresh.items()])
        # The first call is the wait the resident lived; a recall or a transfer's second call does not reset it.
        cur.many("UPDATE central_tickets SET counter = ?, waited_seconds = ? WHERE ward = ? AND kiosk = ? "
                 "AND ticket = ? AND waited_seconds IS NULL", called)
        cur.many("UPDATE central_tickets SET outcome = ?, service_seconds = ? WHERE ward = ? AND kiosk = ? "
                 "AND ticket = ?", ended)
        cur.many("INSERT INTO central_daily (ward, day, metric, service, counter, n, total) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (ward, day, metric, service, counter) "
                 "DO UPDATE SET n = central_daily.n + excluded.n, total = central_daily.total + excluded.total",
                 [(ward, *key, n, total) for key, (n, total) in daily.items()])
