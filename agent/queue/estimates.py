"""Estimated waiting time per service from the recent service times at this office."""

from __future__ import annotations

import math
import sqlite3

from agent.queue.catalogue import Service
from agent.queue.tickets import DONE, WAITING


def average_service_minutes(conn: sqlite3.Connection, service: Service, window: int) -> float:
    """Mean of the last `window` completed services; the catalogue's typical time until there are 3."""
    rows = conn.execute(
        "SELECT (julianday(finished_at) - julianday(COALESCE(serving_at, called_at))) * 1440.0 "
        "FROM tickets WHERE service=? AND state=? AND finished_at IS NOT NULL "
        "ORDER BY finished_at DESC LIMIT ?",
        (service.code, DONE, window),
    ).fetchall()
    minutes = [float(r[0]) for r in rows if r[0] is not None and r[0] >= 0]
    if len(minutes) < 3:
        return service.typical_minutes
    return sum(minutes) / len(minutes)


def people_ahead(conn: sqlite3.Connection, service: str, arrival: int, priority: bool) -> int:
    """Waiting tickets of the same service that will be called before this one (priority first)."""
    if priority:
        sql = "SELECT COUNT(*) FROM tickets WHERE state=? AND service=? AND priority IS NOT NULL AND arrival<?"
        return int(conn.execute(sql, (WAITING, service, arrival)).fetchone()[0])
    sql = ("SELECT COUNT(*) FROM tickets WHERE state=? AND service=? "
           "AND (priority IS NOT NULL OR arrival<?)")
    return int(conn.execute(sql, (WAITING, service, arrival)).fetchone()[0])


def estimate_wait_minutes(ahead: int, avg: float, service: Service) -> int:
    """People ahead times the mean service time, shared by the counters that serve the service."""
    if ahead <= 0:
        return 0
    counters = max(1, len(service.counters))
    # julianday arithmetic carries float noise: 2 min comes back as 2.0000001; round before ceil.
    return math.ceil(round(ahead * avg / counters, 3))
