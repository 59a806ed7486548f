"""Daily summaries with histograms against the exact per-ticket figures, on SQLite and PostgreSQL:
counts equal, percentiles within one bucket (rounded up), service levels exact at minute thresholds."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from central import histogram as h
from central.db import Db
from central.kpi import _from_tickets, busiest_hours, ticket_kpis
from central.schema import ensure_schema
from central.summarizer import Summarizer
from tests.central_helpers import Kiosk, open_db, target_for


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    for target in target_for(request.param, tmp_path):
        d = open_db(target)
        yield d
        d.close()


def test_bucket_bounds_and_precision() -> None:
    assert [h.UPPER[h.bucket(v)] for v in (0, 1, 10, 11, 3600, 3601, 28800, 28801, 10**6)] == [
        10, 10, 10, 20, 3600, 3660, 28800, 29400, 2**31 - 1]
    counts = h.merge([h.encode({h.bucket(401): 1}), h.encode({h.bucket(405): 2, h.bucket(900): 1})])
    assert h.percentile(counts, 50) == 410 and h.percentile(counts, 90) == 900  # 401, 405 rounded up
    assert h.at_most(counts, 15 * 60) == 4 and h.at_most(counts, 6 * 60) == 0
    assert h.percentile(h.merge([]), 50) is None


def test_day_summaries_agree_with_tickets(db: Db) -> None:
    rng = random.Random(7)
    kiosks = [Kiosk(db, ward, f"k-{ward}") for ward in ("26734", "26740", "26743")]
    for k in kiosks:
        for n in range(60):
            day = f"2026-11-{10 + n % 3:02d}"
            ref = {"ticket": f"t{n}", "number": f"A{n:03d}", "service": ("a", "b", "c")[n % 3], "priority": None}
            k.event("ticket.issued", f"{day}T0{1 + n % 8}:00:00.000Z", source="kiosk", day=day, **ref)
            if n % 7:
                k.event("ticket.called", f"{day}T09:00:00.000Z", counter=1 + n % 2,
                        waited_seconds=rng.randint(0, 5000), reason="next", **ref)
                k.event("ticket.done", f"{day}T09:30:00.000Z", counter=1, service_seconds=rng.randint(30, 2000), **ref)
    # Small chunks: calls and outcomes arrive in later folds than their ticket's issue.
    assert Summarizer(db, chunk=11).run_once() == sum(k.seq for k in kiosks)
    for by in ("all", "ward", "service", "day"):
        fast = ticket_kpis(db, None, "2026-11-01", "2026-11-30", by=by)  # type: ignore[arg-type]
        exact = _from_tickets(db, None, "2026-11-01", "2026-11-30", by, (15, 30))  # type: ignore[arg-type]
        assert [k.key for k in fast] == [k.key for k in exact] and len(fast) > 0
        for f, e in zip(fast, exact, strict=True):
            assert (f.issued, f.served, f.called, f.within) == (e.issued, e.served, e.called, e.within)
            assert f.wait_avg == pytest.approx(e.wait_avg)
            for got, true in ((f.wait_p50, e.wait_p50), (f.wait_p90, e.wait_p90), (f.service_p90, e.service_p90)):
                assert got is not None and true is not None and 0 <= got - true < 60
    assert sum(n for _, n in busiest_hours(db, None, "2026-11-01", "2026-11-30")) == 180
    # The migration's backfill rebuilds from the tickets exactly what the chunk deltas built.
    before = db.query("SELECT * FROM central_day_stats ORDER BY ward, day, service")
    with db.transaction() as cur:
        cur.run("DROP TABLE central_day_stats")
        cur.run("DROP INDEX central_tickets_ticket")
        cur.run("DROP INDEX central_daily_metric_day")
        cur.run("DELETE FROM central_daily WHERE metric LIKE 'ward.%'")
        cur.run("UPDATE central_web_version SET version = 1")
    ensure_schema(db)
    assert db.query("SELECT * FROM central_day_stats ORDER BY ward, day, service") == before
