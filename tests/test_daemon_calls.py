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


async def test_sigterm_after_call_churn_stops_within_seconds(kiosk_env: dict[str, str], mosquitto: Broker) -> None:
    import time

    import aiohttp
    web = free_port()
    env = {**kiosk_env, "KIOSK_MQTT__URL": mosquitto.url, "KIOSK_WEB__PORT": str(web), "KIOSK_CAMERA__SOURCE": "demo:",
           "KIOSK_CALL__MICROPHONE": "tone:440", "KIOSK_CALL__SPEAKER": "null", "KIOSK_VOICE__SINK": "null",
           "KIOSK_CALL__HOST_ADDRESSES": '["127.0.0.1"]'}
    daemon = subprocess.Popen([*KIOSK, "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        await asyncio.to_thread(wait_port, web, 30)
        base = f"http://127.0.0.1:{web}/api/calls"
        async with aiohttp.ClientSession() as http:
            for _ in range(100):  # polling another process until its MQTT connection is up (≤ 20 s)
                async with http.post(base, json={}) as resp:
                    last = await resp.text()
                    if resp.status == 201:
                        call = await resp.json()
                        break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError(last)
            async with http.delete(f"{base}/{call['call']}", headers={"X-Call-Token": call["token"]}) as resp:
                assert resp.status == 200
            for _ in range(40):  # start and hang up: each call builds and closes an aiortc peer
                async with http.post(base, json={}) as resp:
                    assert resp.status == 201, await resp.text()
                    call = await resp.json()
                async with http.delete(f"{base}/{call['call']}", headers={"X-Call-Token": call["token"]}) as resp:
                    assert resp.status == 200
            async with http.post(base, json={}) as resp:  # and one still ringing at SIGTERM
                assert resp.status == 201
        sent = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        _, err = await asyncio.to_thread(daemon.communicate, timeout=10)  # the bound: far below 85 s
        assert daemon.returncode == 0, err
        assert time.monotonic() - sent < 10
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate()
