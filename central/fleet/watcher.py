"""Central's fleet watcher: subscribes to every kiosk's status, telemetry and replies, stores them
(FleetStore), sweeps for stale kiosks, and sends remote commands awaiting their reply.

Messages are stored in arrival order by one task (a bounded queue: a flood drops telemetry rather
than memory); the store runs in a worker thread on the watcher's own connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from central.contract import COMMANDS, REPLY_LEAF, STATUS_LEAF, TELEMETRY_LEAF, command_topic
from central.errors import BadInput, CentralError
from central.fleet.store import FleetStore
from central.mqtt import CentralMqtt

logger = logging.getLogger(__name__)

SEGMENT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MAX_PAYLOAD = 256 * 1024
QUEUE_BOUND = 1000


def utcnow() -> datetime:
    return datetime.now(UTC)


class FleetWatcher:
    def __init__(self, mqtt: CentralMqtt, store: FleetStore, root: str = "wards", sweep_every: float = 15.0,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.mqtt = mqtt
        self.store = store
        self.root = root
        self.sweep_every = sweep_every
        self.clock = clock
        self.pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.inbox: asyncio.Queue[tuple[str, str, str, dict[str, Any]]] = asyncio.Queue(QUEUE_BOUND)
        self.stored = 0  # messages stored so far (tests await it rather than sleep)
        self.beat: Callable[[], None] = lambda: None  # the liveness feed, when a watchdog watches

    async def run(self, stop: asyncio.Event) -> None:
        for leaf, qos in ((STATUS_LEAF, 1), (TELEMETRY_LEAF, 0), (REPLY_LEAF, 1)):
            self.mqtt.subscribe(f"{self.root}/+/+/{leaf}", qos)
        await self.mqtt.start(self.on_message)
        storer = asyncio.create_task(self._store_forever(), name="fleet-store")
        try:
            while not stop.is_set():
                self.beat()
                try:
                    await asyncio.to_thread(self.store.sweep, self.clock())
                except CentralError:
                    logger.exception("fleet: sweep failed, retrying")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.sweep_every)
        finally:
            storer.cancel()
            await asyncio.gather(storer, return_exceptions=True)
            await self.mqtt.stop()

    def on_message(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        if len(parts) != 4 or parts[0] != self.root or not all(SEGMENT.match(p) for p in parts[1:3]):
            return
        if len(payload) > MAX_PAYLOAD:
            logger.warning("fleet: oversized message on %s ignored", topic)
            return
        try:
            body = json.loads(payload) if payload else {}
        except ValueError:
            logger.warning("fleet: malformed message on %s ignored", topic)
            return
        if not isinstance(body, dict):
            return
        _, ward, kiosk, leaf = parts
        if leaf == REPLY_LEAF:
            fut = self.pending.get(str(body.get("id")))
            if fut is not None and not fut.done():
                fut.set_result(body)
            return
        try:
            self.inbox.put_nowait((ward, kiosk, leaf, body))
        except asyncio.QueueFull:
            logger.warning("fleet: store queue full, %s/%s %s dropped", ward, kiosk, leaf)

    async def _store_forever(self) -> None:
        while True:
            ward, kiosk, leaf, body = await self.inbox.get()
            try:
                await asyncio.to_thread(self.store.record, ward, kiosk, leaf, body, self.clock())
                self.stored += 1
            except CentralError:
                logger.exception("fleet: storing %s/%s %s failed", ward, kiosk, leaf)

    async def command(self, ward: str, kiosk: str, who: str, name: str, args: dict[str, Any],
                      timeout: float = 10.0) -> tuple[str, dict[str, Any] | None]:
        """Send a command, record it and its reply (None after `timeout`); returns (record id, reply)."""
        if name not in COMMANDS:
            raise BadInput(f"Lệnh không hợp lệ: {name}.")
        if not SEGMENT.match(ward) or not SEGMENT.match(kiosk):
            raise BadInput("Mã phường/xã hoặc ki-ốt không hợp lệ.")
        command_id = await asyncio.to_thread(self.store.command_sent, ward, kiosk, who, name, args, self.clock())
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[command_id] = fut
        reply: dict[str, Any] | None
        try:
            if not self.mqtt.publish(command_topic(self.root, ward, kiosk, name),
                                     json.dumps({"id": command_id, "args": args})):
                reply = {"ok": False, "error": "Trung tâm chưa kết nối máy chủ MQTT.", "code": "not_connected"}
            else:
                try:
                    reply = await asyncio.wait_for(fut, timeout)
                except TimeoutError:
                    reply = None
        finally:
            self.pending.pop(command_id, None)
        await asyncio.to_thread(self.store.command_replied, command_id, reply, self.clock())
        return command_id, reply
