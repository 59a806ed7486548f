"""`kiosk fleet status` against a real broker and a real agent process: online, then offline by the will."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest

from agent.core import Core
from agent.mqtt_client import Message, MqttClient, MqttOptions
from tests.brokers import Broker
from tests.conftest import run_kiosk
from tests.test_sync_resilience import kiosk_settings, spawn_agent

pytestmark = pytest.mark.timeout(60)
STATUS = "wards/26734/demo-01/status"


async def next_status(queue: asyncio.Queue[Message], state: str) -> dict[str, object]:
    while True:
        body: dict[str, object] = json.loads((await asyncio.wait_for(queue.get(), 15)).payload)
        if body["state"] == state:
            return body


async def test_status_online_then_offline_after_kill_9(tmp_path: Path, mosquitto: Broker,
                                                       kiosk_env: dict[str, str]) -> None:
    data_dir = tmp_path / "kiosk"
    core = Core.open(kiosk_settings(data_dir, mosquitto.url))
    core.db.conn.execute("INSERT INTO meta(key, value) VALUES ('boot', '41')")  # the agent reads meta 'boot'
    core.close()
    stop = asyncio.Event()
    watcher = MqttClient(MqttOptions(url=mosquitto.url, client_id="watcher"))
    statuses: asyncio.Queue[Message] = asyncio.Queue()
    watcher.subscribe(STATUS, statuses.put_nowait)
    runner = asyncio.create_task(watcher.run(stop))
    agent = await asyncio.to_thread(spawn_agent, data_dir, mosquitto.url)
    try:
        online = await next_status(statuses, "online")
        assert online["boot"] == 41 and online["version"]
        telemetry = asyncio.Queue[Message]()
        watcher.subscribe("wards/26734/demo-01/telemetry", telemetry.put_nowait)
        tele = json.loads((await asyncio.wait_for(telemetry.get(), 10)).payload)
        assert {"uptime_s", "cpu_percent", "disk_free_mb", "backlog", "clock", "queue_length"} <= tele.keys()
        proc = await asyncio.to_thread(run_kiosk, kiosk_env, "fleet", "status", "--broker", mosquitto.url, "--json")
        doc = json.loads(proc.stdout)
        (row,) = doc["kiosks"]
        assert row["state"] == "online" and "offline" not in row["alerts"]
        assert proc.returncode == (3 if row["alerts"] else 0)
    finally:
        agent.send_signal(signal.SIGKILL)
        await asyncio.to_thread(agent.wait)
    offline = await next_status(statuses, "offline")  # the will, published by the broker
    assert offline["boot"] == 41
    proc = await asyncio.to_thread(run_kiosk, kiosk_env, "fleet", "status", "--broker", mosquitto.url, "--json")
    assert proc.returncode == 3, proc.stderr
    (row,) = json.loads(proc.stdout)["kiosks"]
    assert row["state"] == "offline" and "offline" in row["alerts"]
    table = await asyncio.to_thread(run_kiosk, kiosk_env, "fleet", "status", "--broker", mosquitto.url)
    assert "demo-01" in table.stdout and "offline" in table.stdout
    stop.set()
    await runner


def test_unreachable_broker_is_a_user_error(kiosk_env: dict[str, str]) -> None:
    from tests.brokers import free_port

    proc = run_kiosk(kiosk_env, "fleet", "status", "--broker", f"mqtt://user:secret@127.0.0.1:{free_port()}",
                     "--wait", "0.2")
    assert proc.returncode == 1
    assert "cannot reach the broker" in proc.stderr and "secret" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("kiosk: cannot reach the broker mqtt://127.0.0.1:")
