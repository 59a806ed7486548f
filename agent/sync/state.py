"""The outbox's durable watermarks (schema 2, `sync_state`) and the queries on the event log it needs.

`sent_seq`: every event up to it was taken by the broker (PUBACK). `acked_seq`: central durably
stored every event up to it (the retained `ack`). Only events at or below `acked_seq` are ever
pruned, and only after `storage.event_retention_days`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from agent.store.db import Database

PRUNE_BATCH = 5000


@dataclass
class Watermarks:
    sent: int = 0
    acked: int = 0
    acked_at: str | None = None


def load(db: Database) -> Watermarks:
    try:
        row = db.conn.execute("SELECT sent_seq, acked_seq, acked_at FROM sync_state WHERE id = 1").fetchone()
    except sqlite3.Error as exc:
        raise db.wrap_errors(exc) from exc
    if row is None:
        return Watermarks()
    return Watermarks(sent=int(row[0]), acked=int(row[1]), acked_at=row[2])


def save(db: Database, marks: Watermarks, now: str) -> None:
    try:
        with db.write() as conn:
            conn.execute("UPDATE sync_state SET sent_seq = ?, acked_seq = ?, acked_at = ?, updated_at = ? WHERE id = 1",
                         (marks.sent, marks.acked, marks.acked_at, now))
    except sqlite3.Error as exc:
        raise db.wrap_errors(exc) from exc


def oldest_after(db: Database, seq: int) -> tuple[int, str] | None:
    """The first event after `seq` (seq, at), or None when there is none."""
    try:
        row = db.conn.execute("SELECT seq, at FROM events WHERE seq > ? ORDER BY seq LIMIT 1", (seq,)).fetchone()
    except sqlite3.Error as exc:
        raise db.wrap_errors(exc) from exc
    return None if row is None else (int(row[0]), str(row[1]))


def prune(db: Database, acked: int, before: str) -> int:
    """Delete acknowledged events older than `before` (RFC 3339), in short transactions."""
    total = 0
    while True:
        try:
            with db.write() as conn:
                cur = conn.execute(
                    "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE seq <= ? AND at < ? "
                    "ORDER BY seq LIMIT ?)", (acked, before, PRUNE_BATCH))
                deleted = cur.rowcount
        except sqlite3.Error as exc:
            raise db.wrap_errors(exc) from exc
        total += deleted
        if deleted < PRUNE_BATCH:
            return total
