"""Central's event store: every kiosk's events once per (ward, kiosk, seq), and its gapless high-water mark.

SQLite by default (one file, `synchronous=FULL`), PostgreSQL for production (`postgresql://…`,
psycopg 3). The same SQL runs on both; only the placeholder and the row lock differ. The ack of a
kiosk is the highest seq such that every seq from 1 up to it is stored: it is computed inside the
transaction that stored the batch, so it is never published before the events are durable.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from agent.errors import StorageError

logger = logging.getLogger(__name__)

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS central_events (ward TEXT NOT NULL, kiosk TEXT NOT NULL, seq BIGINT NOT NULL, "
    "id TEXT NOT NULL, type TEXT NOT NULL, at TEXT NOT NULL, data TEXT NOT NULL, received_at TEXT NOT NULL, "
    "PRIMARY KEY (ward, kiosk, seq))",
    "CREATE TABLE IF NOT EXISTS central_acks (ward TEXT NOT NULL, kiosk TEXT NOT NULL, seq BIGINT NOT NULL, "
    "at TEXT, PRIMARY KEY (ward, kiosk))",
]
SCAN_LIMIT = 100_000

KioskKey = tuple[str, str]


class Envelope(BaseModel):
    """The event envelope (ARCHITECTURE.md); unknown extra fields are tolerated for forward compatibility."""

    model_config = ConfigDict(extra="ignore")
    v: StrictInt
    id: StrictStr
    kiosk: StrictStr
    ward: StrictStr
    seq: StrictInt = Field(ge=1)
    type: StrictStr
    at: StrictStr
    data: dict[str, Any]


@dataclass(frozen=True)
class Received:
    envelope: Envelope
    raw_data: str


class CentralStore(Protocol):
    def store(self, batch: Sequence[Received], now: str) -> dict[KioskKey, int]: ...
    def acks(self) -> dict[KioskKey, int]: ...
    def seqs(self, ward: str, kiosk: str) -> list[int]: ...
    def close(self) -> None: ...


class SqlStore:
    """The shared logic; subclasses open the connection and say how to lock."""

    placeholder = "?"

    def __init__(self) -> None:
        self.conn: Any = None

    def _sql(self, text: str) -> str:
        return text.replace("?", self.placeholder)

    def _begin(self) -> None:
        raise NotImplementedError

    def _lock_ack(self, cur: Any, key: KioskKey) -> int:
        cur.execute(self._sql("INSERT INTO central_acks (ward, kiosk, seq) VALUES (?, ?, 0) ON CONFLICT DO NOTHING"),
                    key)
        cur.execute(self._sql("SELECT seq FROM central_acks WHERE ward = ? AND kiosk = ?" + self._for_update), key)
        return int(cur.fetchone()[0])

    _for_update = ""

    def store(self, batch: Sequence[Received], now: str) -> dict[KioskKey, int]:
        """Insert new events (duplicates ignored) and move each kiosk's ack; returns acks that moved."""
        if not batch:
            return {}
        rows = [(r.envelope.ward, r.envelope.kiosk, r.envelope.seq, r.envelope.id, r.envelope.type, r.envelope.at,
                 r.raw_data, now) for r in batch]
        keys = sorted({(r.envelope.ward, r.envelope.kiosk) for r in batch})
        moved: dict[KioskKey, int] = {}
        try:
            self._begin()
            cur = self.conn.cursor()
            try:
                cur.executemany(self._sql(
                    "INSERT INTO central_events (ward, kiosk, seq, id, type, at, data, received_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"), rows)
                for key in keys:
                    ack = self._lock_ack(cur, key)
                    new = self._gapless(cur, key, ack)
                    if new > ack:
                        cur.execute(self._sql("UPDATE central_acks SET seq = ?, at = ? WHERE ward = ? AND kiosk = ?"),
                                    (new, now, *key))
                        moved[key] = new
                self.conn.commit()
            except BaseException:
                self.conn.rollback()
                raise
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"central store failed: {exc}", code="central_store") from exc
        except Exception as exc:
            if type(exc).__module__.startswith("psycopg"):
                raise StorageError(f"central store failed: {exc}", code="central_store") from exc
            raise
        return moved

    def _gapless(self, cur: Any, key: KioskKey, ack: int) -> int:
        cur.execute(self._sql("SELECT seq FROM central_events WHERE ward = ? AND kiosk = ? AND seq > ? "
                              "ORDER BY seq LIMIT ?"), (*key, ack, SCAN_LIMIT))
        for (seq,) in cur.fetchall():
            if seq != ack + 1:
                break
            ack = seq
        return ack

    def acks(self) -> dict[KioskKey, int]:
        cur = self.conn.cursor()
        cur.execute("SELECT ward, kiosk, seq FROM central_acks WHERE seq > 0")
        result = {(w, k): int(s) for w, k, s in cur.fetchall()}
        self.conn.commit()
        return result

    def seqs(self, ward: str, kiosk: str) -> list[int]:
        cur = self.conn.cursor()
        cur.execute(self._sql("SELECT seq FROM central_events WHERE ward = ? AND kiosk = ? ORDER BY seq"),
                    (ward, kiosk))
        result = [int(r[0]) for r in cur.fetchall()]
        self.conn.commit()
        return result

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
        for statement in SCHEMA:
            conn.execute(statement)
        conn.commit()
        self.conn = conn
        return self

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
                for statement in SCHEMA:
                    cur.execute(statement)
            self.conn.commit()
        except psycopg.Error as exc:
            raise StorageError(f"cannot open the central database: {exc}", code="central_store") from exc
        return self

    def _begin(self) -> None:
        pass  # psycopg opens a transaction on the first statement


def open_store(target: str) -> SqlStore:
    """`postgresql://…` → PostgreSQL, anything else is a SQLite file path."""
    if target.startswith(("postgresql://", "postgres://")):
        return PostgresStore(target).open()
    return SqliteStore(Path(target)).open()


def keys_of(batch: Iterable[Received]) -> set[KioskKey]:
    return {(r.envelope.ward, r.envelope.kiosk) for r in batch}
