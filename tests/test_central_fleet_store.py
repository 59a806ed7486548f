"""Central's fleet store on both databases: alerts raised, cleared, acknowledged; wards; series bound."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from central.errors import BadInput
from central.fleet import store as store_mod
from central.fleet.store import FleetStore, ensure_fleet_schema, iso
from tests.central_helpers import open_db, target_for

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def fleet(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FleetStore]:
    for target in target_for(request.param, tmp_path):
        db = open_db(target)
        ensure_fleet_schema(db)
        try:
            yield FleetStore(db)
        finally:
            db.close()


def tele(at: datetime, **extra: object) -> dict[str, object]:
    return {"at": iso(at), "version": "1.0", "boot": 3, "backlog": 0, "queue_length": 2,
            "camera": {"state": "running", "fps": 10.0, "drops": 0, "faults": 0}, **extra}


def test_camera_fault_raises_then_clears_and_is_acknowledged(fleet: FleetStore) -> None:
    fleet.record("26740", "k1", "status", {"state": "online", "version": "1.0", "boot": 3}, T0)
    fleet.record("26740", "k1", "telemetry", tele(T0), T0)
    assert fleet.alerts() == []
    t1 = T0 + timedelta(seconds=30)
    fleet.record("26740", "k1", "telemetry", tele(t1, camera={"state": "faulted", "faults": 2}), t1)
    [alert] = fleet.alerts()
    assert (alert.kind, alert.severity, alert.raised_at) == ("camera_fault", "critical", iso(t1))
    fleet.acknowledge(alert.id, "ops1", "Đã gọi kỹ thuật viên", t1)
    with pytest.raises(BadInput):
        fleet.acknowledge(alert.id, "ops1", "  ", t1)
    with pytest.raises(BadInput):
        fleet.acknowledge("nope", "ops1", "x", t1)
    [acked] = fleet.alerts()
    assert (acked.ack_by, acked.ack_note) == ("ops1", "Đã gọi kỹ thuật viên")
    t2 = t1 + timedelta(seconds=30)
    fleet.record("26740", "k1", "telemetry", tele(t2), t2)
    assert fleet.alerts() == []
    [closed] = fleet.alerts(open_only=False)
    assert closed.cleared_at == iso(t2)


def test_offline_since_stale_and_queue_anomaly(fleet: FleetStore) -> None:
    fleet.record("26740", "k1", "status", {"state": "online"}, T0)
    for i in range(6):  # a normal hour: two people waiting
        at = T0 + timedelta(minutes=i)
        fleet.record("26740", "k1", "telemetry", tele(at), at)
    at = T0 + timedelta(minutes=7)
    fleet.record("26740", "k1", "telemetry", tele(at, queue_length=40), at)
    assert {a.kind for a in fleet.alerts()} == {"queue_anomaly"}
    fleet.sweep(at + timedelta(seconds=200))
    assert {a.kind for a in fleet.alerts()} == {"queue_anomaly", "telemetry_stale"}
    off = at + timedelta(seconds=300)
    fleet.record("26740", "k1", "status", {"state": "offline"}, off)
    [k] = fleet.kiosks()
    assert (k["state"], k["state_since"]) == ("offline", iso(off))
    assert "offline" in {a.kind for a in fleet.alerts(ward="26740")}
    assert fleet.alerts(ward="00001") == []


def test_series_is_bounded(fleet: FleetStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_mod, "SERIES_KEEP", 5)
    for i in range(12):
        at = T0 + timedelta(seconds=30 * i)
        fleet.record("26740", "k1", "telemetry", tele(at, backlog=i), at)
    series = fleet.series("26740", "k1")
    assert [p["backlog"] for p in series] == [7, 8, 9, 10, 11]


def test_wards_import(fleet: FleetStore, tmp_path: Path) -> None:
    f = tmp_path / "wards.csv"
    f.write_text("code,name\n26740,Phường Bến Nghé\n26743,Phường Đa Kao\n", encoding="utf-8")
    assert fleet.import_wards(f) == 2
    assert fleet.wards()["26743"] == "Phường Đa Kao"
    f.write_text("26740,Phường Mới\n26744\n", encoding="utf-8")
    with pytest.raises(BadInput):
        fleet.import_wards(f)
    assert fleet.wards()["26740"] == "Phường Bến Nghé"  # nothing changed


def test_last_event_follows_the_ack(fleet: FleetStore) -> None:
    from tests.central_helpers import Kiosk

    k = Kiosk(fleet.db, "26740", "k1")
    k.event("ticket.issued", "2026-03-02T02:00:00Z")
    k.event("ticket.called", "2026-03-02T02:05:00Z")
    k.event("ticket.done", "2026-03-02T02:09:00Z", ack=False)  # not yet acknowledged: not "last" yet
    assert fleet.last_events()[("26740", "k1")] == ("ticket.called", "2026-03-02T02:05:00Z", 2)
