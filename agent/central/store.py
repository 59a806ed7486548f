"""Central's event store: every kiosk's events once per (ward, kiosk, log, seq), and its gapless high-water mark.

SQLite by default (one file, `synchronous=FULL`), PostgreSQL for production (`postgresql://…`,
psycopg 3). The same SQL runs on both; only the placeholder and the row lock differ. The ack of a
kiosk's log is the highest seq such that every seq from 1 up to it is stored: it is computed inside
the transaction that stored the batch, so it is never published before the events are durable. It
names the id of the event at that seq, so a kiosk never prunes an event central holds another
version of (a restored or replaced kiosk database).

A log whose history forks (an event at a stored seq with another id: a restored kiosk backup) is marked
`diverged` at that seq: nothing of it from there on is stored or acknowledged until an operator decides.
Messages that fail validation, or events whose seq central holds with another id, are counted in
`central_quarantine` per kiosk and reason, with a short excerpt: they are never stored, so they are
never acknowledged, and the kiosk keeps them.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from agent.errors import StorageError

from .validate import Received, Rejected

logger = logging.getLogger(__name__)

SCHEMA = [
    # `log` is the kiosk's event log: "" for kiosks older than the field; a kiosk whose database was
    # replaced starts a new log, whose seqs start again at 1 without colliding with the old one's.
    "CREATE TABLE IF NOT EXISTS central_events (ward TEXT NOT NULL, kiosk TEXT NOT NULL, log TEXT NOT NULL DEFAULT '', "
    "seq BIGINT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL, at TEXT NOT NULL, data TEXT NOT NULL, "
    "received_at TEXT NOT NULL, PRIMARY KEY (ward, kiosk, log, seq))",
    "CREATE TABLE IF NOT EXISTS central_acks (ward TEXT NOT NULL, kiosk TEXT NOT NULL, log TEXT NOT NULL DEFAULT '', "
    "seq BIGINT NOT NULL, id TEXT, at TEXT, diverged BIGINT, PRIMARY KEY (ward, kiosk, log))",
    # One row per kiosk and reason, counted: a hostile kiosk cannot grow it without bound.
    "CREATE TABLE IF NOT EXISTS central_quarantine (ward TEXT NOT NULL, kiosk TEXT NOT NULL, code TEXT NOT NULL, "
    "count BIGINT NOT NULL, first_at TEXT NOT NULL, last_at TEXT NOT NULL, topic TEXT NOT NULL, seq BIGINT, "
    "detail TEXT NOT NULL, excerpt TEXT NOT NULL, size BIGINT NOT NULL, PRIMARY KEY (ward, kiosk, code))",
]
SCAN_LIMIT = 100_000

KioskKey = tuple[str, str]
LogKey = tuple[str, str, str]  # ward, kiosk, log


@dataclass(frozen=True)
class Ack:
    """Central holds every event of one kiosk's log up to `seq` without a gap; `id` is the event at `seq`."""

    seq: int
    id: str | None


@dataclass
class StoreResult:
    moved: dict[LogKey, Ack] = field(default_factory=dict)
    # Same log and seq as a stored event but another id: not stored (a restored backup, or a forgery).
    conflicts: list[Received] = field(default_factory=list)
    new_logs: list[LogKey] = field(default_factory=list)  # a log first seen beside another of its kiosk


class CentralStore(Protocol):
    def store(self, batch: Sequence[Received], now: str) -> StoreResult: ...
    def quarantine(self, rejected: Sequence[Rejected], now: str) -> None: ...
    def acks(self) -> dict[LogKey, Ack]: ...
    def seqs(self, ward: str, kiosk: str, log: str | None = None) -> list[int]: ...
    def close(self) -> None: ...


def _log_key(r: Received) -> LogKey:
    return (r.envelope.ward, r.envelope.kiosk, r.envelope.log)


class SqlStore:
    """The shared logic; subclasses open the connection and say how to lock."""

    placeholder = "?"
    _for_update = ""

    def __init__(self) -> None:
        self.conn: Any = None

    def _sql(self, text: str) -> str:
        return text.replace("?", self.placeholder)

    def _begin(self) -> None:
        raise NotImplementedError

    def _columns(self, table: str) -> set[str]:
        raise NotImplementedError

    def _lock_ack(self, cur: Any, key: LogKey) -> tuple[int, int | None, bool]:
        """The log's ack and first diverging seq under a row lock, and whether the log is new to central."""
        cur.execute(self._sql("INSERT INTO central_acks (ward, kiosk, log, seq) VALUES (?, ?, ?, 0) "
                              "ON CONFLICT DO NOTHING"), key)
        created = cur.rowcount == 1
        cur.execute(self._sql("SELECT seq, diverged FROM central_acks WHERE ward = ? AND kiosk = ? AND log = ?"
                              + self._for_update), key)
        ack, diverged = cur.fetchone()
        return int(ack), None if diverged is None else int(diverged), created

    def _run(self, work: Any) -> Any:
        """One transaction; database errors become StorageError (the ingest retries those)."""
        try:
            self._begin()
            cur = self.conn.cursor()
            try:
                result = work(cur)
                self.conn.commit()
            except BaseException:
                self.conn.rollback()
                raise
        except (sqlite3.Error, OSError, OverflowError) as exc:
            raise StorageError(f"central store failed: {exc}", code="central_store") from exc
        except Exception as exc:
            if type(exc).__module__.startswith("psycopg"):
                raise StorageError(f"central store failed: {exc}", code="central_store") from exc
            raise
        return result

    def store(self, batch: Sequence[Received], now: str) -> StoreResult:
        """Insert new events (exact duplicates ignored) and move each log's ack."""
        if not batch:
            return StoreResult()

        def work(cur: Any) -> StoreResult:
            result = StoreResult()
            by_log: dict[LogKey, list[Received]] = {}
            for r in batch:
                by_log.setdefault(_log_key(r), []).append(r)
            for key in sorted(by_log):
                ack, diverged, created = self._lock_ack(cur, key)
                if created and self._other_logs(cur, key):
                    result.new_logs.append(key)
                conflicts: list[Received] = []
                fresh = self._without_conflicts(cur, key, by_log[key], conflicts)
                if conflicts and diverged is None:
                    # This log's history forked (a restored backup): nothing from the fork point on is
                    # stored or acknowledged, so the kiosk keeps all of it until an operator decides.
                    diverged = min(r.envelope.seq for r in conflicts)
                    cur.execute(self._sql("UPDATE central_acks SET diverged = ? WHERE ward = ? AND kiosk = ? "
                                          "AND log = ?"), (diverged, *key))
                if diverged is not None:
                    conflicts += [r for r in fresh if r.envelope.seq >= diverged]
                    fresh = [r for r in fresh if r.envelope.seq < diverged]
                result.conflicts += conflicts
                cur.executemany(self._sql(
                    "INSERT INTO central_events (ward, kiosk, log, seq, id, type, at, data, received_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"),
                    [(*key, r.envelope.seq, r.envelope.id, r.envelope.type, r.envelope.at, r.raw_data, now)
                     for r in fresh])
                new, new_id = self._gapless(cur, key, ack)
                if new > ack:
                    cur.execute(self._sql("UPDATE central_acks SET seq = ?, id = ?, at = ? "
                                          "WHERE ward = ? AND kiosk = ? AND log = ?"), (new, new_id, now, *key))
                    result.moved[key] = Ack(new, new_id)
            return result

        result: StoreResult = self._run(work)
        return result

    def _other_logs(self, cur: Any, key: LogKey) -> bool:
        cur.execute(self._sql("SELECT 1 FROM central_acks WHERE ward = ? AND kiosk = ? AND log <> ? LIMIT 1"), key)
        return cur.fetchone() is not None

    def _without_conflicts(self, cur: Any, key: LogKey, batch: list[Received],
                           conflicts: list[Received]) -> list[Received]:
        """Drop (and report) events whose seq is stored with another id; keep the rest, deduplicated."""
        seqs = [r.envelope.seq for r in batch]
        cur.execute(self._sql("SELECT seq, id FROM central_events WHERE ward = ? AND kiosk = ? AND log = ? "
                              "AND seq >= ? AND seq <= ?"), (*key, min(seqs), max(seqs)))
        stored = {int(seq): str(id_) for seq, id_ in cur.fetchall()}
        fresh: dict[int, Received] = {}
        for r in batch:
            seq, id_ = r.envelope.seq, r.envelope.id
            known = stored.get(seq) or (fresh[seq].envelope.id if seq in fresh else None)
            if known is None:
                fresh[seq] = r
            elif known != id_:
                conflicts.append(r)
        return list(fresh.values())

    def _gapless(self, cur: Any, key: LogKey, ack: int) -> tuple[int, str | None]:
        cur.execute(self._sql("SELECT seq, id FROM central_events WHERE ward = ? AND kiosk = ? AND log = ? "
                              "AND seq > ? ORDER BY seq LIMIT ?"), (*key, ack, SCAN_LIMIT))
        last_id = None
        for seq, id_ in cur.fetchall():
            if seq != ack + 1:
                break
            ack, last_id = int(seq), str(id_)
        return ack, last_id

    def quarantine(self, rejected: Sequence[Rejected], now: str) -> None:
        """Count rejected messages per kiosk and reason, keeping the latest detail and excerpt."""
        if not rejected:
            return

        def work(cur: Any) -> None:
            for r in rejected:
                cur.execute(self._sql(
                    "INSERT INTO central_quarantine (ward, kiosk, code, count, first_at, last_at, topic, seq, detail, "
                    "excerpt, size) VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (ward, kiosk, code) DO UPDATE "
                    "SET count = central_quarantine.count + 1, last_at = excluded.last_at, topic = excluded.topic, "
                    "seq = excluded.seq, detail = excluded.detail, excerpt = excluded.excerpt, size = excluded.size"),
                    (r.ward, r.kiosk, r.code, now, now, r.topic, r.seq, r.detail, r.excerpt, r.size))

        self._run(work)

    def quarantined(self) -> list[dict[str, Any]]:
        cur = self.conn.cursor()
        cur.execute("SELECT ward, kiosk, code, count, first_at, last_at, topic, seq, detail, excerpt, size "
                    "FROM central_quarantine ORDER BY last_at DESC")
        names = ["ward", "kiosk", "code", "count", "first_at", "last_at", "topic", "seq", "detail", "excerpt", "size"]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        self.conn.commit()
        return rows

    def logs(self) -> list[dict[str, Any]]:
        """Every kiosk log central knows, with its ack; a kiosk with several logs had its database replaced."""
        cur = self.conn.cursor()
        cur.execute("SELECT ward, kiosk, log, seq, id, at, diverged FROM central_acks ORDER BY ward, kiosk, at")
        names = ["ward", "kiosk", "log", "seq", "id", "at", "diverged"]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        self.conn.commit()
        return rows

    def acks(self) -> dict[LogKey, Ack]:
        cur = self.conn.cursor()
        cur.execute("SELECT ward, kiosk, log, seq, id FROM central_acks WHERE seq > 0")
        result = {(w, k, lg): Ack(int(s), i) for w, k, lg, s, i in cur.fetchall()}
        self.conn.commit()
        return result

    def seqs(self, ward: str, kiosk: str, log: str | None = None) -> list[int]:
        """The seqs stored for one log of a kiosk, or for all its logs (log None) one log after another."""
        cur = self.conn.cursor()
        if log is None:
            cur.execute(self._sql("SELECT seq FROM central_events WHERE ward = ? AND kiosk = ? ORDER BY log, seq"),
                        (ward, kiosk))
        else:
            cur.execute(self._sql("SELECT seq FROM central_events WHERE ward = ? AND kiosk = ? AND log = ? "
                                  "ORDER BY seq"), (ward, kiosk, log))
        result = [int(r[0]) for r in cur.fetchall()]
        self.conn.commit()
        return result

    def _migrate(self, cur: Any) -> None:
        """Central databases from before `log`: the old rows become log "" (what old kiosks still send)."""
        for table, key in (("central_events", "seq"), ("central_acks", None)):
            columns = self._columns(table)
            if not columns or "log" in columns:
                continue
            logger.info("central store: adding the kiosk log column to %s", table)
            self._add_log_column(cur, table, key)

    def _add_log_column(self, cur: Any, table: str, key: str | None) -> None:
        raise NotImplementedError

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class SqliteStore(SqlStore):
    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def open(self) -> SqliteStore:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level="DEFERRED", timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        self.conn = conn
        conn.execute("BEGIN IMMEDIATE")
        self._migrate(conn)
        for statement in SCHEMA:
            conn.execute(statement)
        conn.commit()
        return self

    def _columns(self, table: str) -> set[str]:
        return {row[1] for row in self.conn.execute(f"PRAGMA table_info({table})")}

    def _add_log_column(self, cur: Any, table: str, key: str | None) -> None:
        # SQLite cannot change a primary key in place: rebuild the table with the new one.
        create = next(s for s in SCHEMA if f"EXISTS {table} " in s).replace("IF NOT EXISTS ", "")
        old = [c for c in self._columns(table)]
        cur.execute(f"ALTER TABLE {table} RENAME TO {table}_before_log")
        cur.execute(create)
        names = ", ".join(old)
        cur.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {table}_before_log")
        cur.execute(f"DROP TABLE {table}_before_log")

    def _begin(self) -> None:
        # IMMEDIATE: several ingest processes on one file serialise on the write lock.
        self.conn.execute("BEGIN IMMEDIATE")


class PostgresStore(SqlStore):
    placeholder = "%s"
    _for_update = " FOR UPDATE"

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url

    def open(self) -> PostgresStore:
        import psycopg  # only central needs it; the kiosk never imports it

        try:
            self.conn = psycopg.connect(self.url)
            with self.conn.cursor() as cur:
                self._migrate(cur)
                for statement in SCHEMA:
                    cur.execute(statement)
            self.conn.commit()
        except psycopg.Error as exc:
            raise StorageError(f"cannot open the central database: {exc}", code="central_store") from exc
        return self

    def _columns(self, table: str) -> set[str]:
        with self.conn.cursor() as cur:
            cur.execute("SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                        "AND table_schema = current_schema()", (table,))
            return {str(r[0]) for r in cur.fetchall()}

    def _add_log_column(self, cur: Any, table: str, key: str | None) -> None:
        keys = "ward, kiosk, log" + (f", {key}" if key else "")
        cur.execute(f"ALTER TABLE {table} ADD COLUMN log TEXT NOT NULL DEFAULT ''")
        cur.execute(f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey")
        cur.execute(f"ALTER TABLE {table} ADD PRIMARY KEY ({keys})")
        if table == "central_acks":
            cur.execute("ALTER TABLE central_acks ADD COLUMN id TEXT")
            cur.execute("ALTER TABLE central_acks ADD COLUMN diverged BIGINT")

    def _begin(self) -> None:
        pass  # psycopg opens a transaction on the first statement


def open_store(target: str) -> SqlStore:
    """`postgresql://…` → PostgreSQL, anything else is a SQLite file path."""
    if target.startswith(("postgresql://", "postgres://")):
        return PostgresStore(target).open()
    return SqliteStore(Path(target)).open()


def keys_of(batch: Iterable[Received]) -> set[LogKey]:
    return {_log_key(r) for r in batch}
