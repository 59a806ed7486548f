"""`make run`'s program (agent.demo) end to end: its broker, the central ingest and the agent come up,
the demo camera's codes become check-ins, central acknowledges them, and SIGTERM stops everything."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from agent.mqtt_client import Message, MqttClient, MqttOptions
from tests.brokers import free_port, wait_port
from tests.conftest import ROOT


def first_file(folder: Path, pattern: str, timeout: float) -> Path | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(folder.glob(pattern))
        if found:
            return found[0]
        time.sleep(0.1)
    return None


async def test_demo_comes_up_syncs_and_stops(tmp_path: Path) -> None:
    web, mqtt_port, ws, central_web = free_port(), free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK_")}
    env.update({"PYTHONPATH": str(ROOT), "KIOSK_STORAGE__DATA_DIR": str(tmp_path / "demo"),
                "KIOSK_WEB__PORT": str(web), "KIOSK_MQTT__URL": f"mqtt://127.0.0.1:{mqtt_port}",
                "KIOSK_CALL__OFFICER_BROKER_URL": f"ws://127.0.0.1:{ws}",
                "KIOSK_VOICE__SINK": f"wav:{tmp_path / 'callouts'}", "KIOSK_CALL__SPEAKER": "null",
                "KIOSK_CALL__HOST_ADDRESSES": '["127.0.0.1"]', "KIOSK_DEMO_CENTRAL_PORT": str(central_web),
                "KIOSK_PRINTER__DEVICE": f"file:{tmp_path / 'tickets'}"})
    demo = subprocess.Popen([sys.executable, "-m", "agent.demo"], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    stop = asyncio.Event()
    try:
        await asyncio.to_thread(wait_port, mqtt_port, 30)
        acks: asyncio.Queue[Message] = asyncio.Queue()
        watcher = MqttClient(MqttOptions(url=f"mqtt://127.0.0.1:{mqtt_port}", client_id="demo-watcher"))
        watcher.subscribe("wards/26740/demo-01/ack", acks.put_nowait)
        runner = asyncio.create_task(watcher.run(stop))
        # The demo scene shows an ID card, an appointment and a dossier receipt within ~10 s: central
        # acknowledges the check-ins they produce.
        acked = 0
        async with asyncio.timeout(60):
            while acked < 4:
                acked = int(json.loads((await acks.get()).payload)["seq"])
        await asyncio.to_thread(wait_port, ws, 5)  # the officer console's WebSocket listener is up
        with urllib.request.urlopen(f"http://127.0.0.1:{web}/api/queue", timeout=5) as resp:
            queue = json.loads(resp.read())
        assert any(s["waiting"] for s in queue["services"]), "the demo check-ins issued tickets"
        # The emulated printer wrote the check-ins' tickets as PNGs (another process: a bounded look).
        assert await asyncio.to_thread(first_file, tmp_path / "tickets", "*.png", 10.0)
        central = tmp_path / "demo" / "central.db"
        assert central.exists()
        # Central's web serves the demo ward's public page (its kiosk has been acknowledged).
        await asyncio.to_thread(wait_port, central_web, 10)
        with urllib.request.urlopen(f"http://127.0.0.1:{central_web}/public/26740", timeout=5) as resp:
            assert "công khai chất lượng phục vụ" in resp.read().decode()
        password = (tmp_path / "demo" / "central-admin.password").read_text(encoding="utf-8")
        demo.send_signal(signal.SIGTERM)
        out, err = await asyncio.to_thread(demo.communicate, timeout=30)
        assert demo.returncode == 0, err
        assert "Traceback" not in err and f"127.0.0.1:{web}" in out
        assert f"user admin, password {password}" in out
        stop.set()
        await runner
        # Everything the demo started is gone with it.
        for port in (web, mqtt_port, ws, central_web):
            with socket.socket() as s:
                assert s.connect_ex(("127.0.0.1", port)) != 0
    finally:
        stop.set()
        if demo.poll() is None:
            demo.kill()
            demo.communicate()
