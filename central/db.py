"""One small seam over SQLite and PostgreSQL (psycopg 3): the same SQL with `?` placeholders on both.

Central's queries are blocking DB-API calls; the web runs them in a worker thread (`asyncio.to_thread`)
with one connection per call site, so the event loop never waits on the database.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from central.errors import DatabaseError

Row = tuple[Any, ...]


def is_postgres(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


def redact(target: str) -> str:
    """A database target fit for logs: the password of a URL is replaced."""
    if "://" in target and "@" in target:
        scheme, rest = target.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else f"{scheme}://{user}@{host}"
    return target


class Db:
    """A connection with `?` placeholders on both databases; one lock so threads take turns."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.postgres = is_postgres(target)
        self._lock = threading.Lock()
        self.conn: Any = self._connect()

    def _connect(self) -> Any:
        if self.postgres:
            import psycopg  # only central's PostgreSQL path needs it

            try:
                return psycopg.connect(self.target, connect_timeout=10)
            except psycopg.Error as exc:
                raise DatabaseError(f"cannot open the central database {redact(self.target)}: {exc}") from exc
        path = Path(self.target)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level="DEFERRED")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot open the central database {path}: {exc}") from exc
        return conn

    def sql(self, text: str) -> str:
        # psycopg's placeholders are %s, so a literal % (LIKE patterns) is doubled first.
        return text.replace("%", "%%").replace("?", "%s") if self.postgres else text

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[_Cursor]:
        """A cursor inside one transaction: committed on success, rolled back on any error.

        SQLite: a writing transaction takes the write lock at once (IMMEDIATE) so it never fails half
        way on a lock upgrade; a reading one is DEFERRED and does not hold up the ingest's writes (WAL).
        """
        with self._lock:
            cur = self.conn.cursor()
            try:
                if not self.postgres:
                    cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield _Cursor(self, cur)
                self.conn.commit()
            except BaseException as exc:
                self.conn.rollback()
                if isinstance(exc, sqlite3.Error) or type(exc).__module__.startswith("psycopg"):
                    raise DatabaseError(f"central database error: {exc}") from exc
                raise
            finally:
                cur.close()

    def query(self, text: str, params: Sequence[Any] = ()) -> list[Row]:
        with self.transaction(write=False) as cur:
            rows: list[Row] = cur.all(text, params)
        return rows

    def one(self, text: str, params: Sequence[Any] = ()) -> Row | None:
        rows = self.query(text, params)
        return rows[0] if rows else None

    def close(self) -> None:
        with self._lock:
            if self.conn is not None:
                self.conn.close()
                self.conn = None


class _Cursor:
    def __init__(self, db: Db, cur: Any) -> None:
        self.db = db
        self.cur = cur

    def run(self, text: str, params: Sequence[Any] = ()) -> int:
        self.cur.execute(self.db.sql(text), tuple(params))
        return int(self.cur.rowcount or 0)

    def many(self, text: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.cur.executemany(self.db.sql(text), [tuple(r) for r in rows])

    def all(self, text: str, params: Sequence[Any] = ()) -> list[Row]:
        self.cur.execute(self.db.sql(text), tuple(params))
        return [tuple(r) for r in self.cur.fetchall()]

    def first(self, text: str, params: Sequence[Any] = ()) -> Row | None:
        rows = self.all(text, params)
        return rows[0] if rows else None


Cursor = _Cursor
