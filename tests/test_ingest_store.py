"""Central's store, SQLite and PostgreSQL: duplicates ignored, the ack is the highest seq with no gap below."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.central.store import Ack, SqliteStore, SqlStore, open_store
from agent.central.validate import Envelope, Received

PG = "postgresql://postgres@127.0.0.1:5432/test"


def ev(seq: int, kiosk: str = "k-01", ward: str = "26734", log: str = "", version: str = "") -> Received:
    """An event whose id is stable for (ward, kiosk, log, seq, version): a re-send is a true duplicate."""
    event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{ward}/{kiosk}/{log}/{seq}/{version}"))
    env = Envelope(v=1, id=event_id, kiosk=kiosk, ward=ward, seq=seq, type="ticket.issued",
                   at="2026-11-30T02:00:00.000Z", log=log, data={"n": seq})
    return Received(env, f'{{"n":{seq}}}')


def acked(store: SqlStore) -> dict[tuple[str, str, str], int]:
    return {key: ack.seq for key, ack in store.acks().items()}


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
    k1, k2 = ("26734", "k-01", ""), ("26734", "k-02", "")
    assert store.store([ev(1), ev(2), ev(4)], "t1").moved == {k1: Ack(2, ev(2).envelope.id)}  # 3 missing
    again = store.store([ev(2), ev(4), ev(5)], "t2")  # duplicates ignored, gap still open
    assert again.moved == {} and again.conflicts == []
    assert store.store([ev(3), ev(1, kiosk="k-02")], "t3").moved == {k1: Ack(5, ev(5).envelope.id),
                                                                      k2: Ack(1, ev(1, kiosk="k-02").envelope.id)}
    assert store.seqs("26734", "k-01") == [1, 2, 3, 4, 5]
    assert acked(store) == {k1: 5, k2: 1}


def test_same_seq_with_another_id_is_a_conflict_and_never_acknowledged(store: SqlStore) -> None:
    """A restored kiosk backup reuses seqs with new ids: central keeps its own, reports the others, and its
    ack keeps naming the events it holds, so the kiosk can tell and keep its new events."""
    store.store([ev(1), ev(2), ev(3)], "t1")
    result = store.store([ev(3, version="restored"), ev(4, version="restored")], "t2")
    # 3 forks the history; 4 follows the fork, so it is not stored either, and the ack stays on 3.
    assert [r.envelope.seq for r in result.conflicts] == [3, 4] and result.moved == {}
    assert store.seqs("26734", "k-01") == [1, 2, 3]
    assert store.acks() == {("26734", "k-01", ""): Ack(3, ev(3).envelope.id)}
    assert [row["diverged"] for row in store.logs()] == [3]
    later = store.store([ev(5, version="restored"), ev(3)], "t3")  # an exact duplicate is still fine
    assert [r.envelope.seq for r in later.conflicts] == [5] and later.moved == {}


def test_a_replaced_database_starts_a_new_log_stored_beside_the_old(store: SqlStore) -> None:
    """Before logs, central kept the first event per seq and acked the old database's seqs to the new one."""
    old, new = ("26734", "k-01", ""), ("26734", "k-01", "b" * 32)
    store.store([ev(s) for s in range(1, 101)], "t1")
    result = store.store([ev(s, log="b" * 32) for s in range(1, 51)], "t2")
    assert result.new_logs == [new] and result.conflicts == []
    assert result.moved == {new: Ack(50, ev(50, log="b" * 32).envelope.id)}
    assert store.seqs("26734", "k-01", "b" * 32) == list(range(1, 51))
    assert store.seqs("26734", "k-01", "") == list(range(1, 101))
    assert acked(store) == {old: 100, new: 50}
    assert {row["log"] for row in store.logs()} == {"", "b" * 32}


def test_quarantine_counts_per_kiosk_and_reason(store: SqlStore) -> None:
    from agent.central.validate import Rejected

    bad = Rejected("wards/26734/k-01/events", "26734", "k-01", 7, "too_deep", "nested deeper than 12", "[[[[", 100_000)
    store.quarantine([bad, bad], "t1")
    store.quarantine([Rejected(bad.topic, "26734", "k-01", None, "not_json", "not JSON", "x", 1)], "t2")
    rows = {r["code"]: r for r in store.quarantined()}
    assert rows["too_deep"]["count"] == 2 and rows["too_deep"]["seq"] == 7 and rows["not_json"]["count"] == 1


OLD_SCHEMA = [
    "CREATE TABLE central_events (ward TEXT NOT NULL, kiosk TEXT NOT NULL, seq BIGINT NOT NULL, id TEXT NOT NULL, "
    "type TEXT NOT NULL, at TEXT NOT NULL, data TEXT NOT NULL, received_at TEXT NOT NULL, "
    "PRIMARY KEY (ward, kiosk, seq))",
    "CREATE TABLE central_acks (ward TEXT NOT NULL, kiosk TEXT NOT NULL, seq BIGINT NOT NULL, at TEXT, "
    "PRIMARY KEY (ward, kiosk))",
]


def test_a_postgresql_store_from_before_logs_is_migrated() -> None:
    psycopg = pytest.importorskip("psycopg")
    schema = f"ingest_old_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable on 127.0.0.1:5432: {exc}")
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        for statement in OLD_SCHEMA:
            admin.execute(statement.replace("CREATE TABLE ", f"CREATE TABLE {schema}."))
        admin.execute(f"INSERT INTO {schema}.central_events VALUES ('26734', 'k-01', 1, %s, 'ticket.issued', 'x', "
                      "'{}', 't0')", (ev(1).envelope.id,))
        admin.execute(f"INSERT INTO {schema}.central_acks VALUES ('26734', 'k-01', 1, 't0')")
        store = open_store(f"{PG}?options=-csearch_path%3D{schema}")
        try:
            assert store.seqs("26734", "k-01") == [1]
            assert store.store([ev(1), ev(2)], "t1").moved == {("26734", "k-01", ""): Ack(2, ev(2).envelope.id)}
            assert store.store([ev(1, log="c" * 32)], "t2").new_logs == [("26734", "k-01", "c" * 32)]
        finally:
            store.close()
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


def test_a_store_from_before_logs_is_migrated(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    for statement in OLD_SCHEMA:
        conn.execute(statement)
    conn.execute("INSERT INTO central_events VALUES ('26734', 'k-01', 1, ?, 'ticket.issued', 'x', '{}', 't0')",
                 (ev(1).envelope.id,))
    conn.execute("INSERT INTO central_acks VALUES ('26734', 'k-01', 1, 't0')")
    conn.commit()
    conn.close()
    store = SqliteStore(path).open()
    try:
        assert store.seqs("26734", "k-01") == [1]
        assert store.store([ev(1), ev(2)], "t1").moved == {("26734", "k-01", ""): Ack(2, ev(2).envelope.id)}
    finally:
        store.close()
