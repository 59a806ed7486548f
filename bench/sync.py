"""MQTT sync figures, one run: `.venv/bin/python bench/sync.py [--events 20000] [--backlog 100000]`.

1. raw paho QoS 1 publish rate (loop_start thread, same payloads, same in-flight window);
2. the agent's outbox drain rate to PUBACK and to end-to-end ack (real ingest, SQLite);
3. the ratio outbox/raw (target ≥ 0.5);
4. peak RSS of an agent process draining a 100,000-event backlog (target ≤ 150 MB);
5. time from broker restart (port open again) to the first newly acknowledged event (target ≤ 1.5 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

# bench/queue.py would shadow the standard library's `queue` (used by asyncio's thread pool).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import paho.mqtt.client as paho  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion  # noqa: E402

from agent.central.ingest import Ingest, ingest_options  # noqa: E402
from agent.central.store import SqliteStore  # noqa: E402
from agent.clock import system_clock  # noqa: E402
from agent.core import Core  # noqa: E402
from agent.mqtt_client import MqttClient  # noqa: E402
from agent.settings import Settings, load_settings  # noqa: E402
from agent.store import events  # noqa: E402
from agent.store.feed import EventFeed  # noqa: E402
from agent.sync.runner import SyncHooks, build_sync  # noqa: E402
from tests.brokers import CATALOGUE, Broker  # noqa: E402

WINDOW = 100


def settings_for(data_dir: Path, url: str) -> Settings:
    return load_settings(storage={"data_dir": data_dir}, queue={"enforce_hours": False, "catalogue": CATALOGUE},
                         device={"ward": "26734", "kiosk": "bench-01"},
                         mqtt={"url": url, "inflight_window": WINDOW, "reconnect_min": 0.05, "reconnect_max": 0.5,
                               "ack_timeout": 2.0},
                         telemetry={"interval": 3600})


def fill(core: Core, n: int) -> None:
    data = {"ticket": "0190f5c4-7b1e-7cc0-8000-000000000000", "number": "A012", "service": "khai-sinh",
            "priority": None, "counter": 1, "waited_seconds": 312}
    done = 0
    while done < n:
        with core.db.write() as conn:
            for _ in range(min(5000, n - done)):
                events.append(conn, "ticket.called", data, system_clock())
                done += 1


def raw_paho_rate(url_port: int, payloads: list[bytes]) -> float:
    done = threading.Event()
    acked = 0
    sem = threading.Semaphore(WINDOW)

    def on_publish(*_a: object) -> None:
        nonlocal acked
        acked += 1
        sem.release()
        if acked == len(payloads):
            done.set()

    c = paho.Client(CallbackAPIVersion.VERSION2, client_id="raw-bench", protocol=MQTTProtocolVersion.MQTTv5)
    c.max_inflight_messages_set(WINDOW)
    c.on_publish = on_publish
    c.connect("127.0.0.1", url_port)
    c.loop_start()
    start = time.perf_counter()
    for p in payloads:
        sem.acquire()
        c.publish("wards/26734/raw-01/events", p, qos=1)
    done.wait(120)
    elapsed = time.perf_counter() - start
    c.disconnect()
    c.loop_stop()
    return len(payloads) / elapsed


async def outbox_rates(tmp: Path, broker: Broker, n: int) -> tuple[float, float]:
    """PUBACK rate like raw paho (no consumer on this machine's 2 cores); then end-to-end with a real ingest."""
    pub_settings = settings_for(tmp / "kiosk-puback", broker.url)
    pub_core = Core.open(pub_settings)
    fill(pub_core, n)
    pub_stop = asyncio.Event()
    pub_feed = EventFeed(pub_core.db)
    pub = build_sync(pub_core, SyncHooks(), pub_feed)
    t0 = time.perf_counter()
    pub_task = asyncio.create_task(pub.run(pub_stop))
    while pub.outbox.marks.sent < n:  # noqa: ASYNC110 - sampling a figure, 5 ms resolution
        await asyncio.sleep(0.005)
    to_puback = n / (time.perf_counter() - t0)
    pub_stop.set()
    await pub_task
    pub_feed.close()
    pub_core.close()

    settings = settings_for(tmp / "kiosk-e2e", broker.url)
    core = Core.open(settings)
    fill(core, n)
    stop = asyncio.Event()
    store = SqliteStore(tmp / "central.db").open()
    ingest = Ingest(store, MqttClient(replace(ingest_options(broker.url), reconnect_min=0.05, reconnect_max=0.5)))
    ingest_task = asyncio.create_task(ingest.run(stop))
    await ingest.client.wait_connected(stop)
    await asyncio.sleep(0.2)
    feed = EventFeed(core.db)
    sync = build_sync(core, SyncHooks(), feed)
    start = time.perf_counter()
    task = asyncio.create_task(sync.run(stop))
    await sync.outbox.wait_acked(n, timeout=300)
    to_ack = n / (time.perf_counter() - start)
    stop.set()
    await asyncio.gather(task, ingest_task)
    feed.close()
    core.close()
    store.close()
    return to_puback, to_ack


async def restart_to_ack(tmp: Path, broker: Broker) -> list[float]:
    settings = settings_for(tmp / "kiosk-restart", broker.url)
    core = Core.open(settings)
    stop = asyncio.Event()
    store = SqliteStore(tmp / "central-restart.db").open()
    ingest = Ingest(store, MqttClient(replace(ingest_options(broker.url), reconnect_min=0.05, reconnect_max=0.5)))
    tasks = [asyncio.create_task(ingest.run(stop))]
    feed = EventFeed(core.db, poll_interval=0.05)
    sync = build_sync(core, SyncHooks(), feed)
    tasks += [asyncio.create_task(sync.run(stop)), asyncio.create_task(feed.poll(stop))]

    async def producer() -> None:
        while not stop.is_set():
            with core.db.write() as conn:
                events.append(conn, "ticket.issued", {"n": 1}, system_clock())
            await asyncio.sleep(0.02)
    tasks.append(asyncio.create_task(producer()))
    figures = []
    for _ in range(5):
        await asyncio.sleep(1.0)
        acked_before = sync.outbox.marks.acked
        broker.kill()
        await asyncio.sleep(1.0)  # the broker stays away a second; the kiosk keeps writing
        broker.start()
        back = time.perf_counter()
        while sync.outbox.marks.acked <= acked_before + 1:  # noqa: ASYNC110 - timing, 5 ms resolution
            await asyncio.sleep(0.005)
        figures.append(time.perf_counter() - back)
    stop.set()
    await asyncio.gather(*tasks)
    feed.close()
    core.close()
    store.close()
    return figures


def drain_child(data_dir: Path, url: str, n: int) -> None:
    async def run() -> None:
        core = Core.open(settings_for(data_dir, url))
        stop = asyncio.Event()
        feed = EventFeed(core.db)
        sync = build_sync(core, SyncHooks(), feed)
        start = time.perf_counter()
        task = asyncio.create_task(sync.run(stop))
        while sync.outbox.marks.sent < n:  # noqa: ASYNC110 - timing a drain
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - start
        stop.set()
        await task
        feed.close()
        core.close()
        print(json.dumps({"rate": n / elapsed, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    asyncio.run(run())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--backlog", type=int, default=100_000)
    ap.add_argument("--drain-child", nargs=3, metavar=("DATA_DIR", "URL", "N"))
    args = ap.parse_args()
    if args.drain_child:
        drain_child(Path(args.drain_child[0]), args.drain_child[1], int(args.drain_child[2]))
        return
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        broker = Broker(tmp / "broker").start()
        try:
            core = Core.open(settings_for(tmp / "payloads", broker.url))
            fill(core, args.events)
            payloads = [json.dumps(e.envelope("26734", "raw-01"), separators=(",", ":")).encode()
                        for e in events.since(core.db.conn, 0, args.events)]
            core.close()
            raw = raw_paho_rate(broker.port, payloads)
            to_puback, to_ack = asyncio.run(outbox_rates(tmp, broker, args.events))
            print(f"payload {len(payloads[0])} bytes, QoS 1, in-flight window {WINDOW}, {args.events} events")
            print(f"raw paho QoS 1 publish:        {raw:9.0f} msg/s")
            print(f"agent outbox → PUBACK:         {to_puback:9.0f} msg/s")
            print(f"agent outbox → end-to-end ack: {to_ack:9.0f} msg/s")
            print(f"ratio outbox/raw (PUBACK):     {to_puback / raw:9.2f}   (target ≥ 0.5)")
            backlog_dir = tmp / "backlog"
            core = Core.open(settings_for(backlog_dir, broker.url))
            fill(core, args.backlog)
            core.close()
            out = subprocess.run([sys.executable, __file__, "--drain-child", str(backlog_dir), broker.url,
                                  str(args.backlog)], capture_output=True, text=True, check=True)
            child = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{args.backlog} backlog drain:        {child['rate']:9.0f} msg/s, "
                  f"peak RSS {child['maxrss_mb']:.0f} MB (target ≤ 150 MB)")
            figures = asyncio.run(restart_to_ack(tmp, broker))
            print("broker restart → first new ack: " + ", ".join(f"{f:.2f}" for f in figures)
                  + f" s (max {max(figures):.2f}, target ≤ 1.5 s; reconnect_max 0.5 s)")
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
