"""Async consumers of the event log: screens, the announcer and the MQTT sync follow it from a seq.

Commits made by this process wake followers at once (`Database.on_commit`); commits by other
processes (CLI calls) are noticed by polling `PRAGMA data_version`, which costs one cheap query.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from agent.store import events
from agent.store.db import Database
from agent.store.events import Event

POLL_INTERVAL_S = 0.25


class EventFeed:
    def __init__(self, db: Database, poll_interval: float = POLL_INTERVAL_S, batch: int = 500) -> None:
        self.db = db
        self.poll_interval = poll_interval
        self.batch = batch
        self._waiters: set[asyncio.Future[None]] = set()
        self._unsubscribe = db.on_commit(self.notify)

    def notify(self) -> None:
        """Wake every follower; safe to call from the event loop thread only."""
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def changed(self, timeout: float | None = None) -> None:
        """Wait until the log may have grown (or until `timeout`)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, timeout)
        finally:
            self._waiters.discard(waiter)

    async def poll(self, stop: asyncio.Event, beat: Callable[[], None] | None = None) -> None:
        """Notice other processes' commits; run as one task of the agent (`beat` proves it is alive)."""
        seen = self.db.data_version()
        while not stop.is_set():
            if beat is not None:
                beat()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll_interval)
            version = self.db.data_version()
            if version != seen:
                seen = version
                self.notify()

    async def follow(self, after_seq: int) -> AsyncIterator[Event]:
        """Every event after `after_seq`, in order, then new ones as they are committed; never ends."""
        last = after_seq
        while True:
            batch = events.since(self.db.conn, last, self.batch)
            if not batch:
                await self.changed(timeout=self.poll_interval * 4)
                continue
            for event in batch:
                last = event.seq
                yield event

    def close(self) -> None:
        self._unsubscribe()
