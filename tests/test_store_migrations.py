"""Migrations keyed on user_version: a database from an older schema is upgraded in place and
keeps its numbering, its events and its tickets."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from agent.clock import FakeClock
from agent.queue.catalogue import Catalogue
from agent.store import events
from agent.store.db import Database
from agent.store.schema import MIGRATIONS
from tests.conftest import make_queue


def test_upgrade_from_schema_5_keeps_numbering(tmp_path: Path, catalogue: Catalogue, clock: FakeClock) -> None:
    path = tmp_path / "old.db"
    import sqlite3

    conn = sqlite3.connect(path, isolation_level=None)
    for version, script in enumerate(MIGRATIONS[:5], 1):
        conn.executescript(script)
        conn.execute(f"PRAGMA user_version={version}")
    # A day in the old layout: A001..A007 issued (A007 for khai-sinh), one event.
    conn.execute("INSERT INTO number_counters(day, prefix, last) VALUES ('2026-11-30', 'A', 7)")
    conn.execute("INSERT INTO events(id, type, at, data) VALUES ('x', 'agent.started', '2026-11-30T01:00:00.000Z', "
                 "'{}')")
    conn.execute("INSERT INTO tickets(id, day, number, prefix, service, first_service, state, arrived_at, arrival) "
                 "VALUES ('t7', '2026-11-30', 'A007', 'A', 'khai-sinh', 'khai-sinh', 'waiting', "
                 "'2026-11-30T01:00:00.000Z', 1)")
    conn.close()
    with Database(path) as db:
        assert db.conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        q = make_queue(db, catalogue, clock)
        assert q.take("khai-sinh").ticket.number == "A008"
        assert events.last_seq(db.conn) == 2
        counts = dict(db.conn.execute("SELECT key, value FROM daily_counts WHERE day='2026-11-30'").fetchall())
        assert counts == {"prefix:A": 8, "service:khai-sinh": 2}
        assert db.integrity_check() == "ok"


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    import sqlite3

    import pytest

    from agent.errors import StorageError

    path = tmp_path / "future.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(StorageError, match="newer than this software"):
        Database(path).open()




def test_seq_high_water_mark_survives_the_events_rebuild(tmp_path: Path) -> None:
    """Schema 7 rebuilds the events table: a log pruned to nothing must still continue after its last seq."""
    import sqlite3

    path = tmp_path / "pruned.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for version, script in enumerate(MIGRATIONS[:6], 1):
        conn.executescript(script)
        conn.execute(f"PRAGMA user_version={version}")
    for i in range(12):
        conn.execute("INSERT INTO events(id, type, at, data) VALUES (?, 'agent.started', 'x', '{}')", (f"e{i}",))
    conn.execute("DELETE FROM events")  # every event acknowledged and pruned
    conn.close()
    with Database(path) as db:
        assert events.last_seq(db.conn) == 12
        with db.write() as c:
            ev = events.append(c, "agent.started", {}, datetime.now(UTC))
        assert ev.seq == 13
