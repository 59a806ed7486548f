"""Call signalling over the agent's own MQTT connection (agent.mqtt_client), as `SignalTransport`."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

from agent.calls.signalling import Message, SignalError
from agent.errors import KioskError
from agent.mqtt_client import Message as MqttMessage
from agent.mqtt_client import MqttClient

logger = logging.getLogger(__name__)

QUEUE_LIMIT = 256  # signalling is a handful of messages per call; more means a flood: drop the oldest


class MqttSubscription:
    def __init__(self, client: MqttClient, topic_filter: str) -> None:
        self.client = client
        self.topic_filter = topic_filter
        self.dropped = 0
        self._queue: asyncio.Queue[tuple[str, Message] | None] = asyncio.Queue(QUEUE_LIMIT)
        self._closed = False

    def handle(self, message: MqttMessage) -> None:
        if self._closed:
            return
        try:
            body = json.loads(message.payload)
        except (ValueError, UnicodeDecodeError):
            logger.warning("ignored a signalling message that is not JSON on %s", message.topic)
            return
        if not isinstance(body, dict):
            return
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait((message.topic, body))

    async def __aiter__(self) -> AsyncIterator[tuple[str, Message]]:
        while not self._closed:
            item = await self._queue.get()
            if item is None:
                return
            yield item

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.client.unsubscribe(self.topic_filter, self.handle)
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(None)


class MqttSignalTransport:
    def __init__(self, client: MqttClient) -> None:
        self.client = client

    async def publish(self, topic: str, payload: Message) -> None:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        try:
            await self.client.publish(topic, body, qos=1)
        except KioskError as exc:
            raise SignalError(f"signalling not delivered: {exc.message}") from exc

    async def subscribe(self, topic_filter: str) -> MqttSubscription:
        sub = MqttSubscription(self.client, topic_filter)
        try:
            await self.client.subscribe_acked(topic_filter, sub.handle)
        except KioskError as exc:
            raise SignalError(f"cannot subscribe to signalling: {exc.message}") from exc
        return sub
