"""`kiosk central ingest`: store every kiosk's events once and publish each kiosk's retained `ack`.

Messages wait in a bounded buffer that drops the oldest when the store falls behind (and counts
it): that is safe here, because an event that is not stored is not acknowledged and the kiosk
re-sends from its ack. The topic, which the broker's ACL ties to the kiosk's identity, decides
whose event it is: an envelope claiming another ward or kiosk is refused.

On every (re)connect the ingest republishes all acks it holds, so a broker restarted without
persistence gets its retained acks back at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections import deque
from dataclasses import dataclass

from pydantic import ValidationError

from agent.clock import Clock, rfc3339, system_clock
from agent.errors import StorageError
from agent.mqtt_client import Message, MqttClient, MqttOptions
from agent.sync.outbox import wait_any
from agent.sync.topics import parse_kiosk_topic

from .store import CentralStore, Envelope, KioskKey, Received

logger = logging.getLogger(__name__)

BATCH = 1000
RETRY_S = 1.0


@dataclass
class IngestStats:
    received: int = 0
    stored_batches: int = 0
    invalid: int = 0
    dropped: int = 0
    acks_published: int = 0
    storage_errors: int = 0


def ingest_options(url: str, protocol: str = "5", **extra: object) -> MqttOptions:
    client_id = f"ingest-{socket.gethostname()}-{os.getpid()}"
    return MqttOptions(url=url, client_id=client_id, protocol=protocol, inflight=1000, **extra)  # type: ignore[arg-type]


class Ingest:
    def __init__(self, store: CentralStore, client: MqttClient, root: str = "wards", shared: bool = True,
                 buffer: int = 50_000, clock: Clock = system_clock) -> None:
        self.store = store
        self.client = client
        self.root = root
        self.shared = shared
        self.clock = clock
        self.stats = IngestStats()
        self.acks: dict[KioskKey, int] = {}
        self._buffer: deque[Message] = deque(maxlen=buffer)
        self._wake = asyncio.Event()
        self._acks_changed = asyncio.Event()

    @property
    def topic(self) -> str:
        plain = f"{self.root}/+/+/events"
        # MQTT 5 shared subscription: several ingest processes split the load.
        return f"$share/ingest/{plain}" if self.shared else plain

    def on_message(self, message: Message) -> None:
        if len(self._buffer) == self._buffer.maxlen:
            self.stats.dropped += 1
        self._buffer.append(message)
        self.stats.received += 1
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        self.acks = self.store.acks()
        self.client.subscribe(self.topic, self.on_message, qos=1)
        self.client.on_connect(self._republish_acks)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.client.run(stop))
            tg.create_task(self._consume(stop))

    async def wait_ack(self, key: KioskKey, seq: int, timeout: float | None = None) -> bool:
        """Until central's ack for `key` reaches `seq` (False on timeout)."""
        async def until() -> None:
            while self.acks.get(key, 0) < seq:
                await self._acks_changed.wait()
        try:
            await asyncio.wait_for(until(), timeout)
        except TimeoutError:
            return False
        return True

    def _republish_acks(self) -> None:
        for key, seq in self.acks.items():
            self._publish_ack(key, seq)

    def _publish_ack(self, key: KioskKey, seq: int) -> None:
        body = json.dumps({"seq": seq, "at": rfc3339(self.clock())}, separators=(",", ":"))
        fut = self.client.publish(f"{self.root}/{key[0]}/{key[1]}/ack", body, qos=1, retain=True)
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.stats.acks_published += 1

    def _parse(self, message: Message) -> Received | None:
        where = parse_kiosk_topic(message.topic)
        try:
            raw = json.loads(message.payload)
            envelope = Envelope.model_validate(raw, strict=True)
        except (ValueError, ValidationError):
            self.stats.invalid += 1
            logger.warning("ignored a malformed event on %s", message.topic)
            return None
        if where is None or (where[1], where[2]) != (envelope.ward, envelope.kiosk):
            self.stats.invalid += 1
            logger.warning("ignored an event on %s claiming to be from %s/%s", message.topic, envelope.ward,
                           envelope.kiosk)
            return None
        data = json.dumps(envelope.data, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        return Received(envelope, data)

    async def _consume(self, stop: asyncio.Event) -> None:
        pending: list[Received] = []
        while not stop.is_set():
            if not pending and not self._buffer:
                self._wake.clear()
                await wait_any(self._wake.wait(), stop.wait())
                continue
            while self._buffer and len(pending) < BATCH:
                parsed = self._parse(self._buffer.popleft())
                if parsed is not None:
                    pending.append(parsed)
            try:
                moved = self.store.store(pending, rfc3339(self.clock()))
            except StorageError as exc:
                # Keep the batch and retry: nothing is acknowledged that is not stored.
                self.stats.storage_errors += 1
                logger.error("ingest storage error: %s; retrying in %.0f s", exc.message, RETRY_S)
                await wait_any(stop.wait(), timeout=RETRY_S)
                continue
            pending = []
            self.stats.stored_batches += 1
            for key, seq in moved.items():
                self.acks[key] = seq
                self._publish_ack(key, seq)
            if moved:
                self._acks_changed.set()
                self._acks_changed = asyncio.Event()
            await asyncio.sleep(0)  # let the network loop read between batches
