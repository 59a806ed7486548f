"""The outbox: publish the event log in seq order and keep every event until central acknowledges it.

Per connection: start at `acked + 1` (a broker restarted without persistence forgot whatever it
had taken, so what was only PUBACKed is not trusted), publish QoS 1 with at most `inflight_window`
messages awaiting PUBACK, and move `sent` over each contiguous run of PUBACKs. The retained `ack`
moves `acked`. When `acked` stays behind `sent` for `ack_timeout`, publishing rewinds to
`acked + 1`; that wait doubles (up to `ack_timeout_max`) while central stays behind, so a central
outage does not turn into a re-send storm.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from agent.clock import Clock, parse_rfc3339, rfc3339, system_clock
from agent.errors import StorageError
from agent.mqtt_client import Message, MqttClient
from agent.settings import MqttSettings
from agent.store import events
from agent.store.db import Database
from agent.store.events import Event
from agent.store.feed import EventFeed
from agent.sync import state
from agent.sync.topics import KioskTopics

logger = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 0.2
PRUNE_INTERVAL_S = 3600.0
STORAGE_RETRY_S = 2.0


class AckBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    seq: int
    at: str | None = None
    log: str | None = None  # the event log it counts (absent from a central older than logs)
    id: str | None = None  # the id of the event at `seq` central holds


async def wait_any(*aws: Awaitable[Any], timeout: float | None = None) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


class Outbox:
    def __init__(self, db: Database, feed: EventFeed, client: MqttClient, topics: KioskTopics,
                 settings: MqttSettings, retention_days: float, clock: Clock = system_clock) -> None:
        self.db = db
        self.feed = feed
        self.client = client
        self.topics = topics
        self.window = settings.inflight_window
        self.ack_timeout = settings.ack_timeout
        self.ack_timeout_max = max(settings.ack_timeout_max, settings.ack_timeout)
        self.retention = timedelta(days=retention_days)
        self.clock = clock
        self.marks = state.Watermarks()
        self.next_seq = 1
        self.resends = 0
        self.published = 0
        self.storage_error: str | None = None
        self.storage_errors = 0
        # Set whenever storage fails or recovers (for whoever watches the kiosk's health).
        self.storage_changed = asyncio.Event()
        self.ack_ahead: int | None = None
        # An ack for another log, or naming another event at its seq: central holds something else
        # than this database (replaced or restored); nothing is pruned on it, and telemetry says so.
        self.ack_conflict: dict[str, Any] | None = None
        self.log = ""
        self._loaded = False
        self._pending_ack: AckBody | None = None
        self._dirty = False
        self._rewind: int | None = None
        self._wake = asyncio.Event()
        self._acked_changed = asyncio.Event()
        self._progress = time.monotonic()
        self._ack_wait = self.ack_timeout

    # Inputs ----------------------------------------------------------------------------------
    def handle_ack(self, message: Message) -> None:
        """The retained `ack` from central: everything up to `seq` is durably stored there."""
        try:
            body = AckBody.model_validate_json(message.payload)
        except ValidationError:
            logger.warning("ignored a malformed ack on %s", message.topic)
            return
        if self._loaded and body.seq == self.marks.acked and not message.retain and self.published > body.seq:
            # A live repeat of the current ack: an ingest (re)connected and republished its acks. What
            # we sent while it was away may be lost, so re-send now rather than after ack_timeout.
            self._request_rewind(body.seq + 1)
            self._progress = time.monotonic()
            return
        if not self._loaded or body.seq <= self.marks.acked:
            if self._loaded and body.seq < self.marks.acked:
                logger.info("central acknowledges seq %d, below the %d it acknowledged before", body.seq,
                            self.marks.acked)
            if not self._loaded:
                self._pending_ack = body  # applied once the watermarks are loaded
            return
        if body.log is not None and body.log != self.log:
            self._conflict(body, f"the ack counts event log {body.log!r}, this database's is {self.log!r}")
            return
        try:
            newest = events.last_seq(self.db.conn)
            own_id = events.id_at(self.db.conn, body.seq) if body.id is not None else None
        except sqlite3.Error as exc:
            self._storage_failed(self.db.wrap_errors(exc))
            return
        if body.id is not None and own_id is not None and own_id != body.id:
            self._conflict(body, f"central holds event {body.id} at seq {body.seq}, this database {own_id}")
            return
        if body.seq > newest:
            # Central holds seqs this kiosk never wrote (a replaced database?): accepting would let
            # new events be taken for duplicates there. Refuse, and say so in telemetry.
            if self.ack_ahead != body.seq:
                logger.error("central acknowledges seq %d but this kiosk's log ends at %d", body.seq, newest)
            self.ack_ahead = body.seq
            return
        self.ack_ahead = None
        self.ack_conflict = None
        self.marks.acked = body.seq
        self.marks.acked_at = body.at
        self.marks.sent = max(self.marks.sent, body.seq)
        self._dirty = True
        self._progress = time.monotonic()
        self._ack_wait = self.ack_timeout
        self._acked_changed.set()
        self._acked_changed = asyncio.Event()

    def _conflict(self, body: AckBody, why: str) -> None:
        if self.ack_conflict is None or self.ack_conflict.get("seq") != body.seq:
            logger.error("ignored central's ack of seq %d: %s; events are kept and re-sent", body.seq, why)
        self.ack_conflict = {"seq": body.seq, "log": body.log, "id": body.id, "why": why}

    def resync(self, from_seq: int) -> int:
        """Publish again from `from_seq` (a `resync` command); returns the first seq still held."""
        first = state.oldest_after(self.db, max(0, from_seq - 1))
        start = first[0] if first is not None else self.next_seq
        self._request_rewind(start)
        return start

    async def wait_acked(self, seq: int, timeout: float | None = None) -> bool:
        async def until() -> None:
            while self.marks.acked < seq:
                await self._acked_changed.wait()
        try:
            await asyncio.wait_for(until(), timeout)
        except TimeoutError:
            return False
        return True

    def stats(self) -> dict[str, Any]:
        """Backlog figures for telemetry and the `status` command."""
        out: dict[str, Any] = {"sent_seq": self.marks.sent, "acked_seq": self.marks.acked,
                               "acked_at": self.marks.acked_at, "resends": self.resends,
                               "storage_error": self.storage_error, "storage_errors": self.storage_errors}
        if self.ack_ahead is not None:
            out["ack_ahead_of_log"] = self.ack_ahead
        if self.ack_conflict is not None:
            out["ack_conflict"] = self.ack_conflict
        try:
            newest = events.last_seq(self.db.conn)
            oldest = state.oldest_after(self.db, self.marks.sent)
        except StorageError as exc:
            out["storage_error"] = exc.message
            return out
        except sqlite3.Error as exc:
            out["storage_error"] = str(exc)
            return out
        out["last_seq"] = newest
        out["backlog"] = max(0, newest - self.marks.sent)
        out["unacked"] = max(0, newest - self.marks.acked)
        age = None
        if oldest is not None:
            age = max(0.0, (self.clock() - parse_rfc3339(oldest[1])).total_seconds())
        out["oldest_unsent_age_s"] = None if age is None else round(age, 1)
        return out

    # The loops -------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        while not self._loaded and not stop.is_set():
            try:
                self.marks = state.load(self.db)
                self.log = events.log_id(self.db.conn)
                self._loaded = True
            except sqlite3.Error as exc:
                self._storage_failed(self.db.wrap_errors(exc))
                await wait_any(stop.wait(), timeout=STORAGE_RETRY_S)
            except StorageError as exc:
                self._storage_failed(exc)
                await wait_any(stop.wait(), timeout=STORAGE_RETRY_S)
        pending, self._pending_ack = self._pending_ack, None
        if pending is not None:
            self.handle_ack(Message(self.topics.ack, pending.model_dump_json().encode(), 1, True))
        self._progress = time.monotonic()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._publisher(stop))
                tg.create_task(self._flusher(stop))
                tg.create_task(self._lag_watch(stop))
                tg.create_task(self._pruner(stop))
        finally:
            self._flush()

    async def _publisher(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            generation = await self.client.wait_connected(stop)
            if generation is None:
                return
            try:
                await self._session(generation, stop)
            except StorageError as exc:
                self._storage_failed(exc)
                await wait_any(stop.wait(), timeout=STORAGE_RETRY_S)

    async def _session(self, generation: int, stop: asyncio.Event) -> None:
        """Publish until the connection changes; a new connection starts again at acked + 1."""
        self.next_seq = self.marks.acked + 1
        self._rewind = None
        window = asyncio.Semaphore(self.window)
        inflight: deque[tuple[int, asyncio.Future[None]]] = deque()
        ward, kiosk, topic = self.topics.ward, self.topics.kiosk, self.topics.events
        while not stop.is_set() and self.client.generation == generation:
            if self._rewind is not None:
                self.next_seq, self._rewind = self._rewind, None
            try:
                batch = events.since(self.db.conn, self.next_seq - 1, max(self.window, 200))
            except sqlite3.Error as exc:
                raise self.db.wrap_errors(exc) from exc
            self._clear_storage_error()
            if not batch:
                self._wake.clear()
                await wait_any(self.feed.changed(timeout=1.0), self._wake.wait(), stop.wait(),
                               self.client.wait_lost(generation))
                continue
            for event in batch:
                await window.acquire()
                if self._rewind is not None or stop.is_set() or self.client.generation != generation:
                    window.release()
                    break
                fut = self.client.publish(topic, self._payload(event, ward, kiosk, self.log), qos=1)
                inflight.append((event.seq, fut))
                fut.add_done_callback(functools.partial(self._on_puback, window=window, inflight=inflight))
                self.next_seq = event.seq + 1
                self.published = max(self.published, event.seq)

    @staticmethod
    def _payload(event: Event, ward: str, kiosk: str, log: str) -> bytes:
        return json.dumps(event.envelope(ward, kiosk, log), ensure_ascii=False, separators=(",", ":")).encode()

    def _on_puback(self, fut: asyncio.Future[None], window: asyncio.Semaphore,
                   inflight: deque[tuple[int, asyncio.Future[None]]]) -> None:
        window.release()
        if not fut.cancelled() and fut.exception() is not None:
            logger.debug("publish failed: %s", fut.exception())
        while inflight and inflight[0][1].done():
            seq, done = inflight.popleft()
            if done.cancelled() or done.exception() is not None:
                inflight.clear()  # the rest is re-sent from acked + 1 on the next connection or rewind
                return
            if seq > self.marks.sent:
                if self.marks.sent <= self.marks.acked:
                    self._progress = time.monotonic()  # the ack clock starts with the first unacked send
                self.marks.sent = seq
                self._dirty = True

    def _request_rewind(self, seq: int) -> None:
        self._rewind = max(1, seq)
        self._wake.set()

    async def _lag_watch(self, stop: asyncio.Event) -> None:
        tick = min(1.0, self.ack_timeout / 4)
        while not stop.is_set():
            await wait_any(stop.wait(), timeout=tick)
            if not self.client.is_connected or self.marks.sent <= self.marks.acked:
                continue
            waited = time.monotonic() - self._progress
            if waited > self._ack_wait:
                logger.warning("central's ack (%d) lags what the broker took (%d) for %.0f s: re-sending from %d",
                               self.marks.acked, self.marks.sent, waited, self.marks.acked + 1)
                self.resends += 1
                self._request_rewind(self.marks.acked + 1)
                self._progress = time.monotonic()
                self._ack_wait = min(self._ack_wait * 2, self.ack_timeout_max)

    async def _flusher(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await wait_any(stop.wait(), timeout=FLUSH_INTERVAL_S)
            self._flush()

    def _flush(self) -> None:
        if not self._dirty or not self._loaded:
            return
        try:
            self._dirty = False
            state.save(self.db, self.marks, rfc3339(self.clock()))
            self._clear_storage_error()
        except StorageError as exc:
            self._dirty = True
            self._storage_failed(exc)

    async def _pruner(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                pruned = state.prune(self.db, self.marks.acked, rfc3339(self.clock() - self.retention))
                if pruned:
                    logger.info("pruned %d acknowledged events older than %s", pruned, self.retention)
            except StorageError as exc:
                self._storage_failed(exc)
            await wait_any(stop.wait(), timeout=PRUNE_INTERVAL_S)

    def _storage_failed(self, exc: StorageError) -> None:
        if self.storage_error != exc.message:
            logger.error("outbox storage error (%s): %s; retrying", exc.code, exc.message)
            self.storage_changed.set()
        self.storage_error = exc.message
        self.storage_errors += 1

    def _clear_storage_error(self) -> None:
        if self.storage_error is not None:
            logger.info("outbox storage recovered")
            self.storage_error = None
            self.storage_changed.set()
