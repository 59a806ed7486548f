"""KPIs from a hand-built day of events: exact p50/p90, service levels, rates, ratings, completeness,
on SQLite and PostgreSQL, summarised incrementally."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from central.db import Db
from central.kpi import busiest_hours, completeness, daily_counts, ratings, ticket_kpis
from central.schema import ensure_schema
from central.summarizer import Summarizer
from tests.central_helpers import Kiosk, open_db, target_for

WARD = "26734"
DAY = "2026-11-30"
WAITS = [60, 120, 300, 600, 900, 1200, 1800, 2400, 3000]  # t1..t9 called; t10 never called


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    for target in target_for(request.param, tmp_path):
        d = open_db(target)
        yield d
        d.close()


def utc(hour: int, minute: int) -> str:
    return f"2026-11-30T{hour:02d}:{minute:02d}:00.000Z"  # local = UTC + 7


def ref(n: int) -> dict[str, object]:
    return {"ticket": f"t{n}", "number": f"A{n:03d}", "service": "khai-sinh" if n <= 5 else "ket-hon",
            "priority": None}


def first_half(k: Kiosk) -> None:
    for n in range(1, 11):  # t1..t6 issued at 09:xx local, t7..t10 at 10:xx
        k.event("ticket.issued", utc(2 if n <= 6 else 3, n), source="kiosk", day=DAY, **ref(n))
    for n, wait in enumerate(WAITS[:4], start=1):
        k.event("ticket.called", utc(4, n), counter=1 + n % 2, waited_seconds=wait, reason="next", **ref(n))


def second_half(k: Kiosk) -> None:
    for n, wait in enumerate(WAITS, start=1):
        if n > 4:
            k.event("ticket.called", utc(5, n), counter=1 + n % 2, waited_seconds=wait, reason="next", **ref(n))
    k.event("ticket.called", utc(5, 30), counter=2, waited_seconds=999, reason="transfer", **ref(2))  # not the wait
    for n in range(1, 9):
        k.event("ticket.done", utc(6, n), counter=1 + n % 2, service_seconds=100 * n, **ref(n))
    k.event("ticket.no_show", utc(6, 20), counter=2, reason="max_recalls", **ref(9))
    k.event("ticket.cancelled", utc(6, 21), reason="resident", **ref(10))
    k.event("rating.submitted", utc(6, 22), rating="r1", score=5, scale=5, counter=2, **ref(1))
    k.event("rating.submitted", utc(6, 23), rating="r2", score=3, scale=5, counter=1, **ref(2))
    k.event("feedback.submitted", utc(6, 24), feedback="f1", kind="phan-anh", text="x", has_phone=False)
    k.event("call.answered", utc(6, 25), call="c1", officer="o1", ring_seconds=12)
    k.event("call.missed", utc(6, 26), call="c2")
    k.event("device.fault", utc(6, 27), part="camera")  # not a KPI event: skipped
    # The next local day: outside the range checked below.
    k.event("ticket.issued", "2026-11-30T17:30:00.000Z", source="kiosk", day="2026-12-01",
            ticket="t11", number="A011", service="khai-sinh", priority=None)


def test_known_day_gives_exact_figures(db: Db) -> None:
    k1 = Kiosk(db, WARD, "k-01")
    summ = Summarizer(db, chunk=7)  # small chunks: the fold is exercised across many transactions
    first_half(k1)
    assert summ.run_once() == 14
    second_half(k1)
    k2 = Kiosk(db, WARD, "k-02")
    k2.event("rating.submitted", utc(3, 0), rating="r3", score=3, scale=3, counter=1, **ref(3))
    k2.seq += 1  # seq 2 never arrived: seq 3 is stored but held back
    k2.event("rating.submitted", utc(3, 5), ack=False, rating="r4", score=1, scale=3, counter=1, **ref(4))
    Kiosk(db, "99999", "k-09").event("ticket.issued", utc(2, 0), source="kiosk", day=DAY, **ref(1))
    summ.run_once()
    assert summ.run_once() == 0  # nothing folded twice

    [day] = ticket_kpis(db, [WARD], DAY, DAY)
    assert (day.issued, day.served, day.no_show, day.cancelled, day.called) == (10, 8, 1, 1, 9)
    assert (day.wait_p50, day.wait_p90) == (900, 3000)  # nearest rank: 5th and 9th of 9 waits
    assert (day.service_p50, day.service_p90) == (400, 800)  # 4th and 8th of 8 services
    assert day.within == {15: 5, 30: 7}
    pub = day.public()
    assert pub["service_level"] == {"15": 0.5, "30": 0.7}
    assert (pub["no_show_rate"], pub["abandonment_rate"]) == (0.1, 0.1)

    by_service = {k.key: k for k in ticket_kpis(db, [WARD], DAY, DAY, by="service")}
    assert by_service["khai-sinh"].issued == 5 and by_service["khai-sinh"].wait_p90 == 900
    assert by_service["ket-hon"].wait_p50 == 1800  # 1200, 1800, 2400, 3000 → 2nd
    by_counter = {k.key: k.issued for k in ticket_kpis(db, [WARD], DAY, DAY, by="counter")}
    assert by_counter == {None: 1, 1: 4, 2: 5}
    assert busiest_hours(db, [WARD], DAY, DAY) == [(9, 6), (10, 4)]
    city = {k.key: k.issued for k in ticket_kpis(db, None, DAY, "2026-12-01", by="ward")}
    assert city == {WARD: 11, "99999": 1}

    r = ratings(db, [WARD], DAY, DAY)
    assert r.scales == {3: {1: 0, 2: 0, 3: 1}, 5: {1: 0, 2: 0, 3: 1, 4: 0, 5: 1}}
    assert r.count == 3 and r.normalised == pytest.approx((1 + 0.5 + 1) / 3)
    # Schema v4's backfill derives the per-ward rating rows from the per-service ones: the same figures.
    with db.transaction() as cur:
        cur.run("DELETE FROM central_daily WHERE metric LIKE 'ward.%'")
        cur.run("DROP INDEX central_daily_metric_day")
        cur.run("UPDATE central_web_version SET version = 3")
    ensure_schema(db)
    assert ratings(db, [WARD], DAY, DAY) == r
    assert daily_counts(db, [WARD], DAY, DAY) == {"feedback": (1, 0), "call.answered": (1, 12),
                                                  "call.missed": (1, 0)}
    done = completeness(db, [WARD])
    assert done.kiosks == 2 and done.gaps == 1 and done.behind == 0
    assert done.summarised_to == {f"{WARD}/k-01": k1.seq, f"{WARD}/k-02": 1}
    assert "1 ki-ốt còn sự kiện chưa gửi đủ" in done.sentence()


def test_empty_database_has_no_figures(db: Db) -> None:
    assert ticket_kpis(db, [WARD], DAY, DAY) == []
    assert ratings(db, None, DAY, DAY).normalised is None
    assert completeness(db, None).sentence() == "Chưa có ki-ốt nào gửi sự kiện."


def test_sqlite_reads_do_not_wait_for_the_ingest_write_lock(tmp_path: Path) -> None:
    import sqlite3

    db = open_db(str(tmp_path / "central.db"))
    writer = sqlite3.connect(tmp_path / "central.db", isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # the ingest in the middle of a batch
        writer.execute("INSERT INTO central_acks (ward, kiosk, seq) VALUES ('26734', 'k', 1)")
        db.conn.execute("PRAGMA busy_timeout = 200")  # a blocked read fails fast instead of waiting 30 s
        assert ticket_kpis(db, None, DAY, DAY) == []  # reads the last committed state
        assert completeness(db, None).kiosks == 0
        writer.execute("COMMIT")
        assert completeness(db, None).kiosks == 1
    finally:
        writer.close()
        db.close()
