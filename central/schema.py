"""Central web's own tables, versioned apart from the ingest's, created on start on both databases.

Version 1: users, sessions, login throttle, the summariser's per-kiosk cursor, the per-ticket facts
and the daily counters the KPIs are computed from.
"""

from __future__ import annotations

import logging

from central import daystats
from central.contract import ACKS_DDL, EVENTS_DDL
from central.db import Db

logger = logging.getLogger(__name__)

MIGRATIONS: list[list[str]] = [
    [
        "CREATE TABLE central_users (name TEXT PRIMARY KEY, role TEXT NOT NULL, wards TEXT NOT NULL, "
        "hash TEXT NOT NULL, created_at TEXT NOT NULL)",
        "CREATE TABLE central_sessions (token_hash TEXT PRIMARY KEY, name TEXT NOT NULL, csrf TEXT NOT NULL, "
        "created_at TEXT NOT NULL, expires_at TEXT NOT NULL)",
        "CREATE TABLE central_login_failures (key TEXT PRIMARY KEY, window_start TEXT NOT NULL, "
        "failures INTEGER NOT NULL)",
        # Per kiosk: every event with seq <= this one is in the summaries. It only follows the ack
        # (the gapless mark computed in the ingest's transaction), so no late-committed event is skipped.
        "CREATE TABLE central_summary_cursor (ward TEXT NOT NULL, kiosk TEXT NOT NULL, log TEXT NOT NULL DEFAULT '', "
        "seq BIGINT NOT NULL, PRIMARY KEY (ward, kiosk, log))",
        # One row per ticket: the raw durations, so percentiles can be computed over any range.
        "CREATE TABLE central_tickets (ward TEXT NOT NULL, kiosk TEXT NOT NULL, ticket TEXT NOT NULL, "
        "day TEXT NOT NULL, hour INTEGER NOT NULL, service TEXT NOT NULL, counter INTEGER, "
        "waited_seconds INTEGER, service_seconds INTEGER, outcome TEXT, PRIMARY KEY (ward, kiosk, ticket))",
        "CREATE INDEX central_tickets_ward_day ON central_tickets (ward, day)",
        "CREATE INDEX central_tickets_day ON central_tickets (day)",
        # Counters per ward, day, metric (ratings by scale and score, feedback, calls), service and counter
        # ('' and 0 when the event has none).
        "CREATE TABLE central_daily (ward TEXT NOT NULL, day TEXT NOT NULL, metric TEXT NOT NULL, "
        "service TEXT NOT NULL, counter INTEGER NOT NULL, n BIGINT NOT NULL, total BIGINT NOT NULL, "
        "PRIMARY KEY (ward, day, metric, service, counter))",
    ],
    # Version 2: daily summaries per ward, day and service with wait/service histograms (central/daystats.py),
    # filled from the tickets already summarised when the migration runs.
    daystats.DDL,
    # Version 3: the mobile ticket page finds a ticket by its id alone (central/web/ticket.py).
    ["CREATE INDEX central_tickets_ticket ON central_tickets (ticket)"],
    # Version 4: ratings per ward and day alone (metric ward.rating.SCALE.SCORE), and an index by metric,
    # so a city page reads a few rows a ward-day instead of one per service and counter.
    ["INSERT INTO central_daily (ward, day, metric, service, counter, n, total) SELECT ward, day, "
     "'ward.' || metric, '', 0, SUM(n), SUM(total) FROM central_daily WHERE metric LIKE 'rating.%.%' "
     "GROUP BY ward, day, metric",
     "CREATE INDEX central_daily_metric_day ON central_daily (metric, day)"],
]
VERSION = len(MIGRATIONS)


def ensure_schema(db: Db) -> int:
    """Create the ingest's tables if missing and apply central web's migrations; returns the version."""
    with db.transaction() as cur:
        cur.run(EVENTS_DDL)
        cur.run(ACKS_DDL)
        cur.run("CREATE TABLE IF NOT EXISTS central_web_version (version INTEGER NOT NULL)")
        row = cur.first("SELECT version FROM central_web_version")
        if row is None:
            cur.run("INSERT INTO central_web_version (version) VALUES (0)")
            current = 0
        else:
            current = int(row[0])
        for number, statements in enumerate(MIGRATIONS[current:], start=current + 1):
            for statement in statements:
                cur.run(statement)
            if number == 2:
                daystats.rebuild_all(cur)
            cur.run("UPDATE central_web_version SET version = ?", (number,))
            logger.info("central web schema migrated to version %d", number)
    return max(current, VERSION)
