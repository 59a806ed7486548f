"""Test helpers for calls: a real mosquitto with TCP and WebSockets listeners on 127.0.0.1, and the
agent's own signalling transport (agent.mqtt_client + agent.calls.mqtt_transport) with its own
connection, so the call tests exercise exactly what the kiosk runs.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from agent.calls.mqtt_transport import MqttSignalTransport
from agent.mqtt_client import MqttClient, MqttOptions
from tests import brokers
from tests.brokers import free_port


@dataclass
class Broker(brokers.Broker):
    """mosquitto with a TCP listener and a WebSockets listener (for the officer's browser)."""

    ws_port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self.listener = (f"listener {self.port} 127.0.0.1\n"
                         f"listener {self.ws_port} 127.0.0.1\nprotocol websockets\n")


class AgentTransport(MqttSignalTransport):
    """One client's signalling connection, started and stopped by the test."""

    def __init__(self, port: int, *, client_id: str, timeout: float = 3.0, host: str = "127.0.0.1") -> None:
        super().__init__(MqttClient(MqttOptions(
            url=f"mqtt://{host}:{port}", client_id=client_id, keepalive=5, reconnect_min=0.1,
            reconnect_max=1.0, connect_timeout=timeout, publish_timeout=timeout)))
        self.timeout = timeout
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def connect(self) -> AgentTransport:
        self._task = asyncio.create_task(self.client.run(self._stop))
        await asyncio.wait_for(self.client.wait_connected(self._stop), self.timeout)
        return self

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
