"""Central web test helpers: a fresh database per test (SQLite file or a PostgreSQL database created for
the run on 127.0.0.1:5432) and hand-built kiosk events written where `kiosk central ingest` writes them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from central.db import Db
from central.schema import ensure_schema

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def pg_database() -> Iterator[str]:
    psycopg = pytest.importorskip("psycopg")
    name = f"central_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable on 127.0.0.1:5432: {exc}")
    admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        admin.close()


def target_for(kind: str, tmp_path: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield str(tmp_path / "central.db")
    else:
        yield from pg_database()


def open_db(target: str) -> Db:
    db = Db(target)
    ensure_schema(db)
    return db


class Kiosk:
    """Writes a kiosk's events with gapless seqs into central_events and moves its ack, like the ingest."""

    def __init__(self, db: Db, ward: str, kiosk: str) -> None:
        self.db, self.ward, self.kiosk, self.seq = db, ward, kiosk, 0

    def event(self, type_: str, at: str, ack: bool = True, **data: Any) -> int:
        self.seq += 1
        with self.db.transaction() as cur:
            cur.run("INSERT INTO central_events (ward, kiosk, seq, id, type, at, data, received_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (self.ward, self.kiosk, self.seq, str(uuid.uuid4()), type_,
                                                        at, json.dumps(data), at))
            if ack:
                cur.run("INSERT INTO central_acks (ward, kiosk, seq, at) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (ward, kiosk, log) DO UPDATE SET seq = excluded.seq, at = excluded.at",
                        (self.ward, self.kiosk, self.seq, at))
        return self.seq
