"""`kiosk central ingest`: store every kiosk's events once and publish each kiosk's retained `ack`.

Messages wait in a bounded buffer that drops the oldest when the store falls behind (and counts
it): that is safe here, because an event that is not stored is not acknowledged and the kiosk
re-sends from its ack. The topic, which the broker's ACL ties to the kiosk's identity, decides
whose event it is: an envelope claiming another ward or kiosk is refused.

Every message is validated (`validate.py`); what fails, and events whose seq central holds with
another id, are quarantined with the reason and never acknowledged. A batch the database refuses is
stored again message by message, so one bad message costs its own kiosk's ack, never the others'.

On every (re)connect the ingest republishes all acks it holds, so a broker restarted without
persistence gets its retained acks back at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from collections import deque
from dataclasses import dataclass

from agent.clock import Clock, rfc3339, system_clock
from agent.errors import StorageError
from agent.mqtt_client import Message, MqttClient, MqttOptions
from agent.sync.outbox import wait_any
from agent.sync.topics import parse_kiosk_topic

from .store import Ack, CentralStore, KioskKey, LogKey, StoreResult
from .validate import Invalid, Received, Rejected, excerpt, parse_event, seq_hint

logger = logging.getLogger(__name__)

BATCH = 1000
RETRY_S = 1.0
OUTAGE_AFTER = 3
LOG_EVERY_S = 60.0


@dataclass
class IngestStats:
    received: int = 0
    stored_batches: int = 0
    invalid: int = 0
    quarantined: int = 0
    conflicts: int = 0
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
        # Per kiosk, the log whose ack moved last and that ack (what the retained `ack` topic says).
        self.acks: dict[KioskKey, tuple[str, Ack]] = {}
        self._buffer: deque[Message] = deque(maxlen=buffer)
        self._wake = asyncio.Event()
        self._acks_changed = asyncio.Event()
        self._logged: dict[tuple[str, str, str], float] = {}

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
        self.acks = {}
        for (ward, kiosk, log), ack in self.store.acks().items():
            self.acks.setdefault((ward, kiosk), (log, ack))
        self.client.subscribe(self.topic, self.on_message, qos=1)
        self.client.on_connect(self._republish_acks)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.client.run(stop))
            tg.create_task(self._consume(stop))

    async def wait_ack(self, key: KioskKey, seq: int, timeout: float | None = None) -> bool:
        """Until central's ack for `key` reaches `seq` (False on timeout)."""
        async def until() -> None:
            while self.acked(key) < seq:
                await self._acks_changed.wait()
        try:
            await asyncio.wait_for(until(), timeout)
        except TimeoutError:
            return False
        return True

    def acked(self, key: KioskKey) -> int:
        current = self.acks.get(key)
        return current[1].seq if current is not None else 0

    def _republish_acks(self) -> None:
        for (ward, kiosk), (log, ack) in self.acks.items():
            self._publish_ack((ward, kiosk, log), ack)

    def _publish_ack(self, key: LogKey, ack: Ack) -> None:
        body = json.dumps({"seq": ack.seq, "at": rfc3339(self.clock()), "log": key[2], "id": ack.id},
                          separators=(",", ":"))
        fut = self.client.publish(f"{self.root}/{key[0]}/{key[1]}/ack", body, qos=1, retain=True)
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.stats.acks_published += 1

    def _parse(self, message: Message, rejected: list[Rejected]) -> Received | None:
        where = parse_kiosk_topic(message.topic)
        ward, kiosk = (where[1], where[2]) if where is not None else ("", "")
        try:
            if where is None:
                raise Invalid("bad_topic", "not a kiosk's events topic")
            return parse_event(message.payload, ward, kiosk)
        except Invalid as exc:
            self.stats.invalid += 1
            rejected.append(Rejected(message.topic, ward, kiosk, seq_hint(message.payload), exc.code, exc.detail,
                                     excerpt(message.payload), len(message.payload)))
            return None

    async def _consume(self, stop: asyncio.Event) -> None:
        pending: list[Received] = []
        rejected: list[Rejected] = []
        while not stop.is_set():
            if not pending and not rejected and not self._buffer:
                self._wake.clear()
                await wait_any(self._wake.wait(), stop.wait())
                continue
            while self._buffer and len(pending) < BATCH:
                parsed = self._parse(self._buffer.popleft(), rejected)
                if parsed is not None:
                    pending.append(parsed)
            try:
                result = self._store(pending)
                self._quarantine(rejected + [self._conflict(r) for r in result.conflicts])
            except StorageError as exc:
                # Keep the batch and retry: nothing is acknowledged that is not stored.
                self.stats.storage_errors += 1
                logger.error("ingest storage error: %s; retrying in %.0f s", exc.message, RETRY_S)
                await wait_any(stop.wait(), timeout=RETRY_S)
                continue
            pending, rejected = [], []
            self.stats.stored_batches += 1
            for key in result.new_logs:
                logger.warning("kiosk %s/%s started a new event log %s beside an older one (database replaced?)",
                               *key)
            for key, ack in result.moved.items():
                self.acks[(key[0], key[1])] = (key[2], ack)
                self._publish_ack(key, ack)
            if result.moved:
                self._acks_changed.set()
                self._acks_changed = asyncio.Event()
            await asyncio.sleep(0)  # let the network loop read between batches

    def _store(self, batch: list[Received]) -> StoreResult:
        """Store the batch; when the database refuses it, store message by message so only the
        message(s) it refuses are left out (and quarantined); a refusal of every one is an outage."""
        try:
            return self.store.store(batch, rfc3339(self.clock()))
        except StorageError:
            if len(batch) <= 1:
                raise
        merged = StoreResult()
        refused: list[tuple[Received, StorageError]] = []
        for one in batch:
            try:
                result = self.store.store([one], rfc3339(self.clock()))
            except StorageError as exc:
                refused.append((one, exc))
                if len(refused) == OUTAGE_AFTER and len(merged.moved) + len(merged.conflicts) == 0:
                    raise  # the first few all refused: the database is down, not one message bad
                continue
            merged.moved.update(result.moved)
            merged.conflicts += result.conflicts
            merged.new_logs += result.new_logs
        if len(refused) == len(batch):
            raise refused[0][1]
        self._quarantine([Rejected(f"{self.root}/{r.envelope.ward}/{r.envelope.kiosk}/events", r.envelope.ward,
                                   r.envelope.kiosk, r.envelope.seq, "store_refused", exc.message[:300],
                                   excerpt(r.raw_data.encode()), len(r.raw_data)) for r, exc in refused])
        return merged

    def _conflict(self, r: Received) -> Rejected:
        self.stats.conflicts += 1
        env = r.envelope
        return Rejected(f"{self.root}/{env.ward}/{env.kiosk}/events", env.ward, env.kiosk, env.seq, "seq_conflict",
                        f"seq {env.seq} of log {env.log!r} is stored with another id; this one ({env.id}) is not",
                        excerpt(r.raw_data.encode()), len(r.raw_data))

    def _quarantine(self, rejected: list[Rejected]) -> None:
        if not rejected:
            return
        self.store.quarantine(rejected, rfc3339(self.clock()))
        self.stats.quarantined += len(rejected)
        now = time.monotonic()
        for r in rejected:  # every one is counted in the table; the log says each kiosk and reason once a minute
            key = (r.ward, r.kiosk, r.code)
            if now - self._logged.get(key, -LOG_EVERY_S) >= LOG_EVERY_S:
                self._logged[key] = now
                logger.warning("quarantined a message on %s: %s (%s); `kiosk central quarantine` counts them",
                               r.topic, r.code, r.detail)
