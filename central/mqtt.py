"""The one central module that imports paho-mqtt: a small asyncio bridge over paho's own network thread.

Central does not share the kiosk's client (it may not import kiosk internals). paho reconnects by
itself; every callback is handed to the event loop with `call_soon_threadsafe`, so handlers run on the
loop thread only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

logger = logging.getLogger(__name__)

Handler = Callable[[str, bytes], None]


class CentralMqtt:
    def __init__(self, url: str, client_id: str, username: str | None = None, password: str | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"broker URL must be mqtt://host:port or mqtts://…, not {url!r}")
        self.host = parts.hostname
        self.port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        self.tls = parts.scheme == "mqtts"
        self.client_id = client_id
        self.username = username or parts.username
        self.password = password or parts.password
        self.subscriptions: dict[str, int] = {}
        self.handler: Handler | None = None
        self.connected = asyncio.Event()
        self._client: paho.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def subscribe(self, pattern: str, qos: int = 1) -> None:
        self.subscriptions[pattern] = qos  # (re)sent on every connection

    async def start(self, handler: Handler) -> None:
        self.handler = handler
        self._loop = asyncio.get_running_loop()
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=True)
        if self.username:
            client.username_pw_set(self.username, self.password)
        if self.tls:
            client.tls_set()
        client.reconnect_delay_set(1, 30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client
        client.connect_async(self.host, self.port, keepalive=30)
        client.loop_start()

    async def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)

    def publish(self, topic: str, payload: str, qos: int = 1) -> bool:
        if self._client is None or not self.connected.is_set():
            return False
        return bool(self._client.publish(topic, payload, qos=qos).rc == paho.MQTT_ERR_SUCCESS)

    def _on_connect(self, client: paho.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if getattr(reason, "is_failure", False):
            logger.warning("central MQTT: connection refused (%s)", reason)
            return
        for pattern, qos in self.subscriptions.items():
            client.subscribe(pattern, qos)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.connected.set)
        logger.info("central MQTT: connected to %s:%d", self.host, self.port)

    def _on_disconnect(self, _c: paho.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.connected.clear)
        logger.warning("central MQTT: disconnected (%s)", reason)

    def _on_message(self, _c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        handler, loop = self.handler, self._loop
        if handler is not None and loop is not None:
            loop.call_soon_threadsafe(handler, msg.topic, bytes(msg.payload))
