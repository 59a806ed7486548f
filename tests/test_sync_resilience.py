"""End-to-end delivery through a real mosquitto and a real ingest: nothing lost, nothing twice, in order,
while the broker is kill -9ed, the agent is kill -9ed, or the network path goes silent."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from agent.central.ingest import Ingest, ingest_options
from agent.central.store import SqliteStore
from agent.core import Core
from agent.mqtt_client import MqttClient, MqttOptions
from agent.settings import Settings, load_settings
from agent.store import events
from agent.store.db import Database
from agent.store.feed import EventFeed
from agent.sync.runner import Sync, SyncHooks, build_sync, mqtt_options
from tests.brokers import CATALOGUE, ROOT, Broker, TcpProxy
from tests.disks import fill

pytestmark = pytest.mark.timeout(120)

WARD, KIOSK = "26734", "demo-01"
KEY = (WARD, KIOSK)


def kiosk_settings(data_dir: Path, url: str) -> Settings:
    return load_settings(storage={"data_dir": data_dir, "busy_timeout_ms": 30_000},
                         queue={"enforce_hours": False, "catalogue": CATALOGUE},
                         device={"ward": WARD, "kiosk": KIOSK},
                         mqtt={"url": url, "ack_timeout": 1.0, "reconnect_min": 0.05, "reconnect_max": 0.5,
                               "publish_timeout": 10},
                         telemetry={"interval": 1})


def fast(options: MqttOptions, keepalive: int = 2) -> MqttOptions:
    return replace(options, keepalive=keepalive, reconnect_min=0.05, reconnect_max=0.5)


async def produce(db: Database, count: int, per_tx: int = 20, pause: float = 0.004) -> None:
    """Append `count` events in small transactions, as a busy office would."""
    written = 0
    while written < count:
        n = min(per_tx, count - written)
        with db.write() as conn:
            for _ in range(n):
                events.append(conn, "ticket.issued", {"n": written}, time_now())
                written += 1
        await asyncio.sleep(pause)


def time_now():  # type: ignore[no-untyped-def]
    from agent.clock import system_clock

    return system_clock()


@dataclass
class Central:
    store: SqliteStore
    ingest: Ingest
    task: asyncio.Task[None]


async def start_central(tmp_path: Path, url: str, stop: asyncio.Event) -> Central:
    store = SqliteStore(tmp_path / "central.db").open()
    ingest = Ingest(store, MqttClient(fast(ingest_options(url))))
    return Central(store, ingest, asyncio.create_task(ingest.run(stop)))


@dataclass
class Kiosk:
    core: Core
    feed: EventFeed
    sync: Sync
    task: asyncio.Task[None]


async def start_kiosk(data_dir: Path, url: str, stop: asyncio.Event, keepalive: int = 2) -> Kiosk:
    settings = kiosk_settings(data_dir, url)
    core = Core.open(settings)
    feed = EventFeed(core.db, poll_interval=0.05)
    sync = build_sync(core, SyncHooks(), feed, fast(mqtt_options(settings, 1), keepalive))

    async def both() -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(sync.run(stop))
            tg.create_task(feed.poll(stop))
    return Kiosk(core, feed, sync, asyncio.create_task(both()))


@pytest.fixture
async def stop() -> AsyncIterator[asyncio.Event]:
    event = asyncio.Event()
    yield event
    event.set()


async def test_broker_killed_ten_times_loses_nothing(tmp_path: Path, mosquitto: Broker,
                                                     stop: asyncio.Event) -> None:
    central = await start_central(tmp_path, mosquitto.url, stop)
    kiosk = await start_kiosk(tmp_path / "kiosk", mosquitto.url, stop)
    assert await kiosk.sync.client.wait_connected(stop)
    producer = asyncio.create_task(produce(kiosk.core.db, 5000))
    for _ in range(10):
        await asyncio.sleep(0.35)  # fault schedule, not a wait for a result
        await asyncio.to_thread(mosquitto.restart)
    await producer
    assert await kiosk.sync.outbox.wait_acked(5000, timeout=60), kiosk.sync.outbox.stats()
    assert await central.ingest.wait_ack(KEY, 5000, timeout=10)
    assert central.store.seqs(WARD, KIOSK) == list(range(1, 5001))
    assert kiosk.sync.client.connects >= 6  # it really was cut off and came back, many times
    stop.set()
    await asyncio.gather(kiosk.task, central.task)
    kiosk.feed.close()
    kiosk.core.close()
    central.store.close()


def spawn_agent(data_dir: Path, url: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "tests.brokers", "agent", str(data_dir), url, "2"],
                            stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


async def test_agent_killed_five_times_loses_nothing(tmp_path: Path, mosquitto: Broker,
                                                     stop: asyncio.Event) -> None:
    data_dir = tmp_path / "kiosk"
    core = Core.open(kiosk_settings(data_dir, mosquitto.url))  # creates the schema; the producer's connection
    central = await start_central(tmp_path, mosquitto.url, stop)
    producer = asyncio.create_task(produce(core.db, 5000, pause=0.006))
    for _ in range(5):
        agent = await asyncio.to_thread(spawn_agent, data_dir, mosquitto.url)
        await asyncio.sleep(0.8)  # fault schedule: let it publish a while, then kill -9
        agent.send_signal(signal.SIGKILL)
        await asyncio.to_thread(agent.wait)
    await producer
    agent = await asyncio.to_thread(spawn_agent, data_dir, mosquitto.url)
    try:
        assert await central.ingest.wait_ack(KEY, 5000, timeout=60), central.ingest.acks
    finally:
        agent.terminate()
        await asyncio.to_thread(agent.wait)
    assert central.store.seqs(WARD, KIOSK) == list(range(1, 5001))
    stop.set()
    await central.task
    central.store.close()
    core.close()


async def test_silent_network_cut_is_detected_and_recovered(tmp_path: Path, mosquitto: Broker,
                                                            stop: asyncio.Event) -> None:
    keepalive = 2
    proxy = await TcpProxy(mosquitto.port).start()
    central = await start_central(tmp_path, mosquitto.url, stop)
    kiosk = await start_kiosk(tmp_path / "kiosk", f"mqtt://127.0.0.1:{proxy.port}", stop, keepalive)
    await produce(kiosk.core.db, 200)
    assert await kiosk.sync.outbox.wait_acked(200, timeout=20)
    generation = kiosk.sync.client.generation
    assert generation > 0
    proxy.freeze()
    cut_at = time.monotonic()
    await produce(kiosk.core.db, 300)  # written while the path is dead
    await asyncio.wait_for(kiosk.sync.client.wait_lost(generation), 1.5 * keepalive + 2)
    detected = time.monotonic() - cut_at
    # Correctness bound (the watchdog's contract), with one housekeeping tick of slack.
    assert detected <= 1.5 * keepalive + 0.5, detected
    assert await kiosk.sync.outbox.wait_acked(500, timeout=20), kiosk.sync.outbox.stats()
    assert central.store.seqs(WARD, KIOSK) == list(range(1, 501))
    assert proxy.connections >= 2
    stop.set()
    await asyncio.gather(kiosk.task, central.task)
    await proxy.close()
    kiosk.feed.close()
    kiosk.core.close()
    central.store.close()


async def test_unacknowledged_events_are_kept_and_acknowledged_ones_pruned(tmp_path: Path, mosquitto: Broker,
                                                                           stop: asyncio.Event) -> None:
    from agent.sync import state

    kiosk = await start_kiosk(tmp_path / "kiosk", mosquitto.url, stop)
    await produce(kiosk.core.db, 50)
    # No ingest runs: the broker takes everything, nobody acknowledges, nothing may be pruned.
    while kiosk.sync.outbox.marks.sent < 50:
        await kiosk.feed.changed(timeout=0.1)
    far_future = "9999-01-01T00:00:00.000Z"
    assert state.prune(kiosk.core.db, kiosk.sync.outbox.marks.acked, far_future) == 0
    assert len(events.since(kiosk.core.db.conn, 0, 100)) == 50
    central = await start_central(tmp_path, mosquitto.url, stop)
    # Central comes up late: the ack lags, the outbox re-sends from ack + 1 and central catches up.
    assert await kiosk.sync.outbox.wait_acked(50, timeout=20), kiosk.sync.outbox.stats()
    assert kiosk.sync.outbox.resends >= 1
    assert state.prune(kiosk.core.db, 30, far_future) == 30
    assert [e.seq for e in events.since(kiosk.core.db.conn, 0, 100)] == list(range(31, 51))
    stop.set()
    await asyncio.gather(kiosk.task, central.task)
    kiosk.feed.close()
    kiosk.core.close()
    central.store.close()


async def test_mqtt_3_1_1_end_to_end(tmp_path: Path, mosquitto: Broker, stop: asyncio.Event) -> None:
    """The same delivery with MQTT 3.1.1 on both sides (no response topics, plain subscriptions)."""
    settings = kiosk_settings(tmp_path / "kiosk", mosquitto.url)
    settings.mqtt.protocol = "3.1.1"
    core = Core.open(settings)
    feed = EventFeed(core.db, poll_interval=0.05)
    options = fast(mqtt_options(settings, 1))
    assert options.protocol == "3.1.1"
    sync = build_sync(core, SyncHooks(), feed, options)
    store = SqliteStore(tmp_path / "central.db").open()
    ingest = Ingest(store, MqttClient(fast(ingest_options(mosquitto.url, protocol="3.1.1"))), shared=False)
    tasks = [asyncio.create_task(sync.run(stop)), asyncio.create_task(feed.poll(stop)),
             asyncio.create_task(ingest.run(stop))]
    await produce(core.db, 300)
    assert await sync.outbox.wait_acked(300, timeout=20), sync.outbox.stats()
    assert store.seqs(WARD, KIOSK) == list(range(1, 301))
    stop.set()
    await asyncio.gather(*tasks)
    feed.close()
    core.close()
    store.close()


async def test_full_disk_is_reported_and_retried(tmp_path: Path, tiny_disk: Path, mosquitto: Broker,
                                                 stop: asyncio.Event) -> None:
    """The kiosk's disk fills while central acknowledges: the outbox cannot record the ack, says so in
    its figures (telemetry), keeps going, and records it once space is back. Nothing is lost."""
    from agent.sync import state

    kiosk = await start_kiosk(tiny_disk, mosquitto.url, stop)
    await produce(kiosk.core.db, 100)
    while kiosk.sync.outbox.marks.sent < 100:
        await kiosk.feed.changed(timeout=0.1)
    fill(tiny_disk)
    central = await start_central(tmp_path, mosquitto.url, stop)
    assert await kiosk.sync.outbox.wait_acked(100, timeout=20), kiosk.sync.outbox.stats()
    outbox = kiosk.sync.outbox
    while outbox.storage_error is None:  # the flush of the ack mark fails
        outbox.storage_changed.clear()
        await asyncio.wait_for(outbox.storage_changed.wait(), 10)
    assert "disk is full" in kiosk.sync.outbox.stats()["storage_error"]
    assert state.load(kiosk.core.db).acked < 100  # not on disk yet
    (tiny_disk / "filler").unlink()
    while outbox.storage_error is not None:
        outbox.storage_changed.clear()
        await asyncio.wait_for(outbox.storage_changed.wait(), 10)
    assert state.load(kiosk.core.db).acked == 100
    assert central.store.seqs(WARD, KIOSK) == list(range(1, 101))
    assert kiosk.core.db.integrity_check() == "ok"
    stop.set()
    await asyncio.gather(kiosk.task, central.task)
    kiosk.feed.close()
    kiosk.core.close()
    central.store.close()
