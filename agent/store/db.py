"""The one SQLite file: connection, PRAGMAs, migrations and write transactions.

Several processes (the daemon, CLI calls) write the same file. Every write is one
`BEGIN IMMEDIATE` transaction, so the write lock is taken before anything is read; a number or
a `seq` read inside the transaction cannot be taken by another process before it commits.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from agent.errors import StorageError
from agent.store.schema import MIGRATIONS

logger = logging.getLogger(__name__)

CommitListener = Callable[[], None]
LOW_SPACE_BYTES = 256 * 1024


def _disk_full(folder: Path | None) -> bool:
    """SQLite often reports a full disk as a generic I/O error (the WAL index write fails first)."""
    if folder is None:
        return False
    try:
        return shutil.disk_usage(folder).free < LOW_SPACE_BYTES
    except OSError:
        return False


def _storage_error(exc: sqlite3.Error, folder: Path | None = None) -> StorageError:
    text = str(exc)
    if "full" in text or ("I/O error" in text and _disk_full(folder)):
        return StorageError(f"the disk is full; nothing was written ({text})", code="disk_full")
    if "locked" in text or "busy" in text:
        return StorageError(f"the database stayed locked by another writer ({text})", code="db_locked")
    if "readonly" in text or "read-only" in text:
        return StorageError(f"the database is read-only ({text})", code="db_readonly")
    return StorageError(f"database error: {text}", code="db_error")


def _match_folder_owner(path: Path) -> None:
    """A root CLI call (`kiosk doctor`, counter commands) must not leave the service user a database,
    -wal or -shm it cannot write: files root created in the service's folder go to the folder's owner."""
    if os.geteuid() != 0:
        return
    try:
        folder = path.parent.stat()
        if folder.st_uid == 0:
            return
        for suffix in ("", "-wal", "-shm"):
            file = Path(f"{path}{suffix}")
            if file.exists() and file.stat().st_uid != folder.st_uid:
                os.chown(file, folder.st_uid, folder.st_gid)
    except OSError as exc:
        logger.warning("cannot give %s to the data folder's owner: %s", path, exc.strerror)


class Database:
    """One connection to the kiosk's SQLite file. Not thread-safe: one per thread/process."""

    def __init__(self, path: Path, synchronous: str = "FULL", busy_timeout_ms: int = 5000) -> None:
        self.path = path
        self.synchronous = synchronous
        self.busy_timeout_ms = busy_timeout_ms
        self._conn: sqlite3.Connection | None = None
        self._listeners: list[CommitListener] = []

    # Life cycle ---------------------------------------------------------------------------------
    def open(self) -> Database:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create data folder {self.path.parent}: {exc.strerror}") from exc
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=self.busy_timeout_ms / 1000,
                                   check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute("PRAGMA foreign_keys=ON")
            self._conn = conn
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise _storage_error(exc, self.path.parent) from exc
        _match_folder_owner(self.path)
        return self

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Database:
        return self.open() if self._conn is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageError("database is not open")
        return self._conn

    # Schema --------------------------------------------------------------------------------------
    def _migrate(self) -> None:
        conn = self.conn
        current = conn.execute("PRAGMA user_version").fetchone()[0]
        if current > len(MIGRATIONS):
            raise StorageError(
                f"database {self.path} has schema {current}, newer than this software ({len(MIGRATIONS)})"
            )
        if current == len(MIGRATIONS):
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-read under the lock: another process may have migrated meanwhile.
            current = conn.execute("PRAGMA user_version").fetchone()[0]
            for version in range(current, len(MIGRATIONS)):
                for statement in _split(MIGRATIONS[version]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version={version + 1}")
                logger.info("database migrated to schema %d", version + 1)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # Transactions ------------------------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; commit on success, roll back on any error."""
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _storage_error(exc, self.path.parent) from exc
        try:
            yield conn
        except sqlite3.Error as exc:
            self._rollback()
            raise _storage_error(exc, self.path.parent) from exc
        except BaseException:
            self._rollback()
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise _storage_error(exc, self.path.parent) from exc
        for listener in list(self._listeners):
            listener()

    def _rollback(self) -> None:
        conn = self.conn
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:  # SQLite already rolled back (e.g. after SQLITE_FULL): nothing to undo
                logger.debug("rollback after error failed", exc_info=True)

    def wrap_errors(self, exc: sqlite3.Error) -> StorageError:
        return _storage_error(exc, self.path.parent)

    def on_commit(self, listener: CommitListener) -> Callable[[], None]:
        """Call `listener` after each commit from this connection (in-process consumers wake up)."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def data_version(self) -> int:
        """Changes when another connection (another process) committed; cheap to poll."""
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def integrity_check(self) -> str:
        return str(self.conn.execute("PRAGMA integrity_check").fetchone()[0])

    def meta_get(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    @staticmethod
    def meta_set(conn: sqlite3.Connection, key: str, value: str) -> None:
        conn.execute("INSERT INTO meta(key, value) VALUES(?, ?) "
                     "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, value))


def _split(script: str) -> list[str]:
    return [s.strip() for s in script.split(";\n") if s.strip()]
