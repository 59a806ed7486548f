"""Estimated waiting time per service from the recent service times at this office."""

from __future__ import annotations

import math
import sqlite3

from agent.queue.catalogue import Service
from agent.queue.tickets import WAITING


def average_service_minutes(conn: sqlite3.Connection, service: Service, window: int) -> float:
    """Mean of the last `window` completed services; the catalogue's typical time until there are 3."""
    rows = conn.execute(
        "SELECT (julianday(finished_at) - julianday(COALESCE(serving_at, called_at))) * 1440.0 "
        "FROM tickets WHERE service=? AND state='done' AND finished_at IS NOT NULL "  # partial index tickets_done
        "ORDER BY finished_at DESC LIMIT ?",
        (service.code, window),
    ).fetchall()
    minutes = [float(r[0]) for r in rows if r[0] is not None and r[0] >= 0]
    if len(minutes) < 3:
        return service.typical_minutes
    return sum(minutes) / len(minutes)


def people_ahead(conn: sqlite3.Connection, service: str, arrival: int, priority: bool) -> int:
    """Waiting tickets of the same service that will be called before a ticket that arrived at `arrival`.

    Priority tickets wait behind earlier priority tickets only; a normal ticket waits behind every
    earlier ticket and every priority ticket (strict order; interleaving only makes it shorter).
    """
    if priority:
        sql = "SELECT COUNT(*) FROM tickets WHERE state=? AND service=? AND priority IS NOT NULL AND arrival<?"
        return int(conn.execute(sql, (WAITING, service, arrival)).fetchone()[0])
    # Two index-only counts (tickets_waiting covers state, service, arrival) instead of reading
    # every waiting row for its priority: earlier arrivals, plus priority tickets that came later.
    earlier = conn.execute("SELECT COUNT(*) FROM tickets WHERE state=? AND service=? AND arrival<?",
                           (WAITING, service, arrival)).fetchone()[0]
    later_priority = conn.execute(
        "SELECT COUNT(*) FROM tickets WHERE state=? AND service=? AND arrival>? AND priority IS NOT NULL",
        (WAITING, service, arrival)).fetchone()[0]
    return int(earlier) + int(later_priority)


def estimate_wait_minutes(ahead: int, avg: float, service: Service) -> int:
    """People ahead times the mean service time, shared by the counters that serve the service."""
    if ahead <= 0:
        return 0
    counters = max(1, len(service.counters))
    # julianday arithmetic carries float noise: 2 min comes back as 2.0000001; round before ceil.
    return math.ceil(round(ahead * avg / counters, 3))
