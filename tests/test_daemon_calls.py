"""The video-call wiring of the real daemon: `kiosk call start` → the agent's HTTP API → CallService →
the agent's own MQTT connection → a ring on the broker; no officer answers, so the call is missed."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from pathlib import Path

from agent.mqtt_client import Message, MqttClient, MqttOptions
from tests.brokers import Broker, free_port, wait_port
from tests.conftest import KIOSK, run_kiosk

RTC = "wards/26740/demo-01/rtc/+/kiosk"


async def test_call_start_rings_through_the_daemon(kiosk_env: dict[str, str], tmp_path: Path,
                                                     mosquitto: Broker) -> None:
    web = free_port()
    env = {**kiosk_env, "KIOSK_MQTT__URL": mosquitto.url, "KIOSK_WEB__PORT": str(web), "KIOSK_CAMERA__SOURCE": "demo:",
           "KIOSK_CALL__MICROPHONE": "tone:440", "KIOSK_CALL__SPEAKER": "null", "KIOSK_VOICE__SINK": "null",
           "KIOSK_CALL__RING_TIMEOUT_SECONDS": "2", "KIOSK_CALL__HOST_ADDRESSES": '["127.0.0.1"]'}
    stop = asyncio.Event()
    ring: asyncio.Queue[Message] = asyncio.Queue()
    watcher = MqttClient(MqttOptions(url=mosquitto.url, client_id="officer-watch"))
    watcher.subscribe(RTC, ring.put_nowait)
    runner = asyncio.create_task(watcher.run(stop))
    daemon = subprocess.Popen([*KIOSK, "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        await asyncio.wait_for(watcher.wait_connected(stop), 10)
        await asyncio.to_thread(wait_port, web, 30)
        started = await asyncio.to_thread(run_kiosk, env, "call", "start", "--service", "khai-sinh", "--json")
        assert started.returncode == 0, started.stderr
        call = json.loads(started.stdout)
        assert call["state"] == "ringing"
        messages = []
        async with asyncio.timeout(15):
            while not any(m.get("type") == "cancel" for m in messages):
                msg = await ring.get()
                assert msg.topic == f"wards/26740/demo-01/rtc/{call['call']}/kiosk"
                messages.append(json.loads(msg.payload))
        assert messages[0]["type"] == "ring" and messages[0]["service"] == "khai-sinh"
        shown = await asyncio.to_thread(run_kiosk, env, "call", "show", call["call"], "--json")
        assert json.loads(shown.stdout)["state"] == "missed"
        evs = [json.loads(x)["type"] for x in
               (await asyncio.to_thread(run_kiosk, env, "events", "--json")).stdout.splitlines()]
        assert "call.requested" in evs and "call.missed" in evs
        daemon.send_signal(signal.SIGTERM)
        _, err = await asyncio.to_thread(daemon.communicate, timeout=30)
        assert daemon.returncode == 0, err
    finally:
        stop.set()
        await runner
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate()
