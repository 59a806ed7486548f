"""A corrupt database must not crash-loop the daemon: keep it aside, start fresh, say so loudly.

On the daemon's open, a file that is not a database or fails `PRAGMA quick_check` is renamed with its
-wal/-shm to `kiosk.db.corrupt-<UTC time>` (kept for forensics, never deleted), and a fresh database
takes its place. What can still be read from the broken copy is carried over so the office does not
start again at 001: today's number counters, the boot count and the clock high-water mark. The fresh
database has a new event-log id (`log` in the envelope), so its seqs start again at 1 and central stores
them as a new log beside the broken one's, never as duplicates of it; carrying the old seq over would
leave the new log without its seq 1, which central's gapless ack waits for.
When nothing can be read, today's numbering jumps to RECOVERY_JUMP + 1 (A501…)
so a new number cannot be confused with one a resident in the room already holds.
A `storage.recovered` event and the `storage.recovered` telemetry field report it.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.clock import rfc3339
from agent.errors import StorageError
from agent.store import events
from agent.store.db import Database

logger = logging.getLogger(__name__)

RECOVERY_JUMP = 500
_CARRIED_META = ("boot", events.HIGH_WATER_KEY)


@dataclass
class Recovery:
    at: str
    reason: str
    moved_to: str
    salvaged: bool
    carried: dict[str, Any] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        return asdict(self)


def healthy(path: Path) -> str | None:
    """None when `path` opens as a database and passes quick_check, else the reason."""
    if not path.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            result = str(conn.execute("PRAGMA quick_check").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    return None if result == "ok" else result[:200]


def open_or_recover(db: Database, now: datetime, day: str, prefixes: list[str]) -> Recovery | None:
    """Open `db`; if its file is corrupt, move it aside, open a fresh one and record the recovery."""
    reason = healthy(db.path)
    if reason is None:
        try:
            db.open()
            return None
        except StorageError as exc:
            if exc.code != "db_error":  # disk full, locked, read-only: not corruption, moving it would not help
                raise
            reason = exc.message
    db.close()
    aside = _move_aside(db.path, now)
    logger.error("database %s is corrupt (%s): kept as %s, starting a fresh one", db.path, reason, aside.name)
    carried = _salvage(aside, day)
    db.open()
    recovery = Recovery(at=rfc3339(now), reason=reason, moved_to=aside.name, salvaged=bool(carried),
                        carried={k: v for k, v in carried.items() if k != "counts"})
    with db.write() as conn:
        counts: dict[str, int] = carried.get("counts") or {
            f"prefix:{p}": RECOVERY_JUMP for p in prefixes}
        for key, value in counts.items():
            conn.execute("INSERT INTO daily_counts(day, key, value) VALUES (?, ?, ?) ON CONFLICT(day, key) "
                         "DO UPDATE SET value = max(value, excluded.value)", (day, key, value))
        for key in _CARRIED_META:
            if key in carried:
                Database.meta_set(conn, key, str(carried[key]))
        recovery.carried["numbering"] = {k.removeprefix("prefix:"): v for k, v in counts.items()
                                         if k.startswith("prefix:")}
        events.append(conn, "storage.recovered", recovery.public(), now)
    return recovery


def _move_aside(path: Path, now: datetime) -> Path:
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    try:
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{path}{suffix}")
            if source.exists():
                source.rename(f"{aside}{suffix}")
    except OSError as exc:
        raise StorageError(f"database {path} is corrupt and cannot be moved aside: {exc.strerror}",
                           code="db_corrupt") from exc
    return aside


def _salvage(aside: Path, day: str) -> dict[str, Any]:
    """Whatever of the day's numbering and the counters can still be read; each part on its own."""
    carried: dict[str, Any] = {}
    try:
        conn = sqlite3.connect(f"file:{aside}?mode=ro", uri=True)
    except sqlite3.DatabaseError:
        return carried
    try:
        queries: dict[str, str] = {
            "seq": "SELECT seq FROM sqlite_sequence WHERE name='events'",  # reported, not carried
            **{k: f"SELECT value FROM meta WHERE key='{k}'" for k in _CARRIED_META},
        }
        for key, sql in queries.items():
            try:
                row = conn.execute(sql).fetchone()
            except sqlite3.DatabaseError:
                continue
            if row is not None:
                carried[key] = row[0]
        try:
            rows = conn.execute("SELECT key, value FROM daily_counts WHERE day=?", (day,)).fetchall()
            if rows:
                carried["counts"] = {str(k): int(v) for k, v in rows}
        except sqlite3.DatabaseError:
            pass
    finally:
        conn.close()
    return carried
