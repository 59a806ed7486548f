"""Commands over a real broker: replies on the response topic with correlation data, errors for bad input."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agent.mqtt_client import Message, MqttClient, MqttOptions
from tests.brokers import Broker
from tests.test_sync_resilience import Kiosk, produce, start_kiosk

pytestmark = pytest.mark.timeout(60)
BASE = "wards/26734/demo-01"


class Requester:
    def __init__(self, url: str) -> None:
        self.client = MqttClient(MqttOptions(url=url, client_id="officer-test", reconnect_min=0.05))
        self.replies: asyncio.Queue[Message] = asyncio.Queue()
        self.client.subscribe(f"{BASE}/reply/#", self.replies.put_nowait)  # also matches .../reply itself

    async def ask(self, name: str, body: bytes | str, response: bool = True) -> dict[str, Any]:
        props = {"ResponseTopic": f"{BASE}/reply/test", "CorrelationData": b"corr-1"} if response else None
        await self.client.publish(f"{BASE}/cmd/{name}", body, qos=1, properties=props)
        msg = await asyncio.wait_for(self.replies.get(), 10)
        if response:
            assert msg.topic == f"{BASE}/reply/test" and msg.correlation_data == b"corr-1"
        else:
            assert msg.topic == f"{BASE}/reply"
        reply: dict[str, Any] = json.loads(msg.payload)
        return reply


@pytest.fixture
async def setup(tmp_path: Path, mosquitto: Broker) -> AsyncIterator[tuple[Kiosk, Requester]]:
    stop = asyncio.Event()
    kiosk = await start_kiosk(tmp_path / "kiosk", mosquitto.url, stop)
    req = Requester(mosquitto.url)
    runner = asyncio.create_task(req.client.run(stop))
    assert await req.client.wait_connected(stop) and await kiosk.sync.client.wait_connected(stop)
    await asyncio.sleep(0.1)  # both SUBACKs are in flight; nothing observable to await on the kiosk side
    yield kiosk, req
    stop.set()
    await asyncio.gather(kiosk.task, runner)
    kiosk.feed.close()
    kiosk.core.close()


async def test_good_commands(setup: tuple[Kiosk, Requester]) -> None:
    kiosk, req = setup
    assert (await req.ask("ping", '{"id": "r1"}')) ["result"]["pong"] is True
    status = await req.ask("status", '{"id": 7, "args": {}}')
    assert status["ok"] and status["id"] == 7 and "telemetry.interval" in status["result"]["settings"]
    snap = await req.ask("queue-snapshot", '{"id": "q"}', response=False)
    assert snap["ok"] and "services" in snap["result"]
    changed = await req.ask("set", json.dumps({"id": "s", "args": {"name": "telemetry.interval", "value": 5.0}}))
    assert changed == {"id": "s", "ok": True, "result": {"name": "telemetry.interval", "value": 5.0}}
    assert kiosk.sync.telemetry.interval == 5.0
    await produce(kiosk.core.db, 10)
    resync = await req.ask("resync", json.dumps({"id": "x", "args": {"from": 3}}))
    assert resync["ok"] and resync["result"]["from"] == 3


@pytest.mark.parametrize(("name", "body", "code"), [
    ("reboot-now", '{"id": "u"}', "unknown_command"),
    ("ping", "{not json", "bad_json"),
    ("ping", b"\xff\xfe", "bad_json"),
    ("ping", '["a list"]', "invalid_args"),
    ("ping", '{"id": "a", "args": {"unexpected": 1}}', "invalid_args"),
    ("set", '{"id": "t", "args": {"name": "telemetry.interval", "value": "often"}}', "invalid_value"),
    ("set", '{"id": "t", "args": {"name": "telemetry.interval", "value": 0.1}}', "invalid_value"),
    ("set", '{"id": "t", "args": {"name": "storage.data_dir", "value": "/"}}', "unknown_setting"),
    ("resync", '{"id": "r", "args": {"from": "1"}}', "invalid_args"),
    ("ping", '{"id": "big", "pad": "' + "x" * 20000 + '"}', "too_large"),
])
async def test_bad_commands_get_error_replies(setup: tuple[Kiosk, Requester], name: str, body: str,
                                              code: str) -> None:
    kiosk, req = setup
    reply = await req.ask(name, body)
    assert reply["ok"] is False and reply["code"] == code, reply
    assert isinstance(reply["error"], str) and reply["error"]
    assert (await req.ask("ping", '{"id": "alive"}'))["ok"]  # and the agent is still there
    assert kiosk.sync.commands.errors >= 1
