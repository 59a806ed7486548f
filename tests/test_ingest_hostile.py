"""A compromised or broken kiosk against central (real mosquitto, real ingest, SQLite and PostgreSQL):
hostile events are quarantined and every other kiosk keeps flowing; a replaced kiosk database is stored as
a new log; a restored backup's forked history is never acknowledged, so the kiosk never prunes it."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.central.ingest import Ingest, ingest_options
from agent.central.store import SqlStore, open_store
from agent.central.validate import Invalid, parse_event
from agent.mqtt_client import MqttClient, MqttOptions
from agent.store import events
from tests.brokers import Broker
from tests.central_helpers import target_for
from tests.test_sync_resilience import KIOSK, WARD, fast, produce, start_kiosk

pytestmark = pytest.mark.timeout(120)
EVIL = "evil-01"


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from target_for(request.param, tmp_path)


@pytest.fixture
async def stop() -> AsyncIterator[asyncio.Event]:
    event = asyncio.Event()
    yield event
    event.set()


def envelope(seq: int, **over: object) -> dict[str, object]:
    env: dict[str, object] = {"v": 1, "id": str(uuid.uuid4()), "kiosk": EVIL, "ward": WARD, "seq": seq,
                              "type": "ticket.issued", "at": "2026-11-30T02:00:00.000Z", "data": {"number": "A001"}}
    env.update(over)
    return env


HOSTILE: list[tuple[str, bytes]] = [
    ("bad_number", json.dumps(envelope(2**63)).encode()),  # past BIGINT: killed the ingest before
    ("too_large", b'{"data":' + b"[" * 50_000 + b"]" * 50_000 + b"}"),  # 100 kB deeply nested
    ("too_deep", json.dumps(envelope(1, data={"a": [[[[[[[[[[[[[[1]]]]]]]]]]]]]]})).encode()),
    ("bad_text", json.dumps(envelope(1, data={"name": "x\u0000y"})).encode()),  # PostgreSQL retried it forever
    ("bad_text", b'{"v":1,"id":"a","kiosk":"evil-01","ward":"26734","seq":1,"type":"t","at":"2026-11-30T02:00:00Z",'
                 b'"data":{"s":"\\ud800"}}'),  # a lone surrogate cannot be stored as UTF-8
    ("wrong_kiosk", json.dumps(envelope(1, kiosk="demo-01")).encode()),
    ("not_utf8", b"\xff\xfe garbage"),
    ("not_json", b"{not json"),
    ("bad_envelope", json.dumps(envelope(1, at="yesterday")).encode()),
]


async def test_hostile_events_from_one_kiosk_never_stop_the_others(tmp_path: Path, mosquitto: Broker, target: str,
                                                                    stop: asyncio.Event) -> None:
    store = open_store(target)
    ingest = Ingest(store, MqttClient(fast(ingest_options(mosquitto.url))))
    central = asyncio.create_task(ingest.run(stop))
    evil = MqttClient(MqttOptions(url=mosquitto.url, client_id="evil", reconnect_min=0.05))
    evil_task = asyncio.create_task(evil.run(stop))
    try:
        kiosk = await start_kiosk(tmp_path / "kiosk", mosquitto.url, stop)
        await produce(kiosk.core.db, 25)
        assert await kiosk.sync.outbox.wait_acked(25, timeout=30)  # the ingest is subscribed by now
        assert await evil.wait_connected(stop)
        for _code, payload in HOSTILE:
            await evil.publish(f"wards/{WARD}/{EVIL}/events", payload, qos=1)
        await produce(kiosk.core.db, 25)
        assert await kiosk.sync.outbox.wait_acked(50, timeout=30), kiosk.sync.outbox.stats()
        # The hostile kiosk's own valid event still goes through after all that.
        await evil.publish(f"wards/{WARD}/{EVIL}/events", json.dumps(envelope(1)).encode(), qos=1)
        assert await ingest.wait_ack((WARD, EVIL), 1, timeout=10)
        assert not central.done()
        assert store.seqs(WARD, KIOSK) == list(range(1, 51))
        counts = {row["code"]: row["count"] for row in store.quarantined() if row["kiosk"] == EVIL}
        expected: dict[str, int] = {}
        for code, _ in HOSTILE:
            expected[code] = expected.get(code, 0) + 1
        assert counts == expected
        assert all("\x00" not in row["excerpt"] for row in store.quarantined())
    finally:
        stop.set()
        await asyncio.gather(central, evil_task, return_exceptions=True)
        store.close()


async def test_a_replaced_kiosk_database_is_stored_as_a_new_log(tmp_path: Path, mosquitto: Broker) -> None:
    """Before: central kept the old database's events for seqs 1..100 and acknowledged them to the new
    database, which then pruned events central never stored."""
    stop_central, stop_old, stop_new = asyncio.Event(), asyncio.Event(), asyncio.Event()
    store: SqlStore = open_store(str(tmp_path / "central.db"))
    ingest = Ingest(store, MqttClient(fast(ingest_options(mosquitto.url))))
    central = asyncio.create_task(ingest.run(stop_central))
    try:
        old = await start_kiosk(tmp_path / "old", mosquitto.url, stop_old)
        await produce(old.core.db, 100)
        assert await old.sync.outbox.wait_acked(100, timeout=30)
        stop_old.set()
        await old.task
        old.core.close()
        new = await start_kiosk(tmp_path / "new", mosquitto.url, stop_new)  # same ward and kiosk, empty database
        await produce(new.core.db, 30)
        assert await new.sync.outbox.wait_acked(30, timeout=30), new.sync.outbox.stats()
        new_log = events.log_id(new.core.db.conn)
        assert new_log and new_log != events.log_id(sqlite_conn(tmp_path / "old"))
        assert store.seqs(WARD, KIOSK, new_log) == list(range(1, 31))
        assert len(store.seqs(WARD, KIOSK)) == 130
        assert {row["log"] for row in store.logs()} == {new_log, events.log_id(sqlite_conn(tmp_path / "old"))}
        stop_new.set()
        await new.task
        new.core.close()
    finally:
        for event in (stop_central, stop_old, stop_new):
            event.set()
        await asyncio.gather(central, return_exceptions=True)
        store.close()


async def test_a_restored_backup_is_never_acknowledged_past_its_fork(tmp_path: Path, mosquitto: Broker) -> None:
    """A kiosk database restored from a backup reuses seqs with new events: central must not take them for
    the ones it holds, and the kiosk must never prune them on central's ack."""
    stop_central, stop_a, stop_b = asyncio.Event(), asyncio.Event(), asyncio.Event()
    store: SqlStore = open_store(str(tmp_path / "central.db"))
    ingest = Ingest(store, MqttClient(fast(ingest_options(mosquitto.url))))
    central = asyncio.create_task(ingest.run(stop_central))
    try:
        first = await start_kiosk(tmp_path / "kiosk", mosquitto.url, stop_a)
        await produce(first.core.db, 20)
        assert await first.sync.outbox.wait_acked(20, timeout=30)
        first.core.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        shutil.copytree(tmp_path / "kiosk", tmp_path / "backup")
        await produce(first.core.db, 20)
        assert await first.sync.outbox.wait_acked(40, timeout=30)
        stop_a.set()
        await first.task
        first.core.close()
        shutil.rmtree(tmp_path / "kiosk")
        shutil.copytree(tmp_path / "backup", tmp_path / "kiosk")
        restored = await start_kiosk(tmp_path / "kiosk", mosquitto.url, stop_b)
        await produce(restored.core.db, 25)  # seqs 21..45: 21..40 fork from what central holds
        await wait_for(lambda: ingest.stats.conflicts >= 20, 30)
        # The retained ack (40) was refused: ahead of the log then, or naming another event at 40 now.
        assert restored.sync.outbox.marks.acked <= 20
        # A restarted ingest republishes its acks live: the kiosk now holds seq 40 and compares its id.
        stop_central.set()
        await central
        stop_central = asyncio.Event()
        ingest = Ingest(store, MqttClient(fast(ingest_options(mosquitto.url))))
        central = asyncio.create_task(ingest.run(stop_central))
        await wait_for(lambda: "ack_conflict" in restored.sync.outbox.stats(), 20)
        assert restored.sync.outbox.marks.acked <= 20  # nothing of 21..45 can ever be pruned
        assert store.seqs(WARD, KIOSK) == list(range(1, 41))  # nothing of the fork was stored
        assert [row["diverged"] for row in store.logs()] == [21]
        stop_b.set()
        await restored.task
        restored.core.close()
    finally:
        for event in (stop_central, stop_a, stop_b):
            event.set()
        await asyncio.gather(central, return_exceptions=True)
        store.close()


async def wait_for(condition: object, timeout: float) -> None:
    """For state with no event to await (telemetry fields): bounded polling."""
    assert callable(condition)
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def sqlite_conn(data_dir: Path):  # type: ignore[no-untyped-def]
    import sqlite3

    return sqlite3.connect(next(data_dir.glob("*.db")))


ENVELOPE_KEYS = ("v", "id", "kiosk", "ward", "seq", "type", "at", "log", "data")
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                           max_leaves=30)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.binary(max_size=2000),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({}, optional={k: json_values for k in ENVELOPE_KEYS}).map(lambda d: json.dumps(d).encode()),
    st.builds(lambda seq, data: json.dumps(envelope(seq, data=data)).encode(), st.integers(), json_values),
))
def test_fuzz_the_validator_never_raises_anything_but_invalid(payload: bytes) -> None:
    try:
        received = parse_event(payload, WARD, EVIL)
    except Invalid as exc:
        assert exc.code and len(exc.detail) < 400
        return
    env = received.envelope
    assert 1 <= env.seq < 2**53 and (env.ward, env.kiosk) == (WARD, EVIL)
    assert "\x00" not in received.raw_data
    received.raw_data.encode("utf-8")  # storable as UTF-8 text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(data=json_values, seq=st.integers(min_value=1, max_value=2**53 - 1))
def test_fuzz_whatever_validates_is_stored(tmp_path: Path, data: object, seq: int) -> None:
    try:
        received = parse_event(json.dumps(envelope(seq, data={"x": data})).encode(), WARD, EVIL)
    except Invalid:
        return
    store = open_store(str(tmp_path / f"fuzz-{uuid.uuid4().hex}.db"))
    try:
        result = store.store([received], "t")
        assert result.conflicts == [] and store.seqs(WARD, EVIL) == [seq]
    finally:
        store.close()
