"""Central's store, SQLite and PostgreSQL: duplicates ignored, the ack is the highest seq with no gap below."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.central.store import Envelope, Received, SqliteStore, SqlStore, open_store

PG = "postgresql://postgres@127.0.0.1:5432/test"


def ev(seq: int, kiosk: str = "k-01", ward: str = "26734") -> Received:
    env = Envelope(v=1, id=str(uuid.uuid4()), kiosk=kiosk, ward=ward, seq=seq, type="ticket.issued",
                   at="2026-11-30T02:00:00.000Z", data={"n": seq})
    return Received(env, f'{{"n":{seq}}}')


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    if request.param == "sqlite":
        s: SqlStore = SqliteStore(tmp_path / "central.db").open()
        yield s
        s.close()
        return
    psycopg = pytest.importorskip("psycopg")
    schema = f"ingest_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable on 127.0.0.1:5432: {exc}")
    admin.execute(f"CREATE SCHEMA {schema}")
    s = open_store(f"{PG}?options=-csearch_path%3D{schema}")
    try:
        yield s
    finally:
        s.close()
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


def test_duplicates_and_gaps(store: SqlStore) -> None:
    assert store.store([ev(1), ev(2), ev(4)], "t1") == {("26734", "k-01"): 2}  # 3 missing: ack stops at 2
    assert store.store([ev(2), ev(4), ev(5)], "t2") == {}  # duplicates ignored, gap still open
    assert store.store([ev(3), ev(1, kiosk="k-02")], "t3") == {("26734", "k-01"): 5, ("26734", "k-02"): 1}
    assert store.seqs("26734", "k-01") == [1, 2, 3, 4, 5]
    assert store.acks() == {("26734", "k-01"): 5, ("26734", "k-02"): 1}
