"""The part of the composition shared by the daemon and every CLI call: settings → store → queue."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from agent.clock import Clock, local_day, system_clock
from agent.queue.catalogue import Catalogue, load_catalogue
from agent.queue.service import QueueService
from agent.settings import Settings
from agent.store.db import Database
from agent.store.recovery import Recovery, open_or_recover


@dataclass
class Core:
    settings: Settings
    db: Database
    catalogue: Catalogue
    queue: QueueService
    recovery: Recovery | None = None  # the database was corrupt and replaced at this open

    @classmethod
    def open(cls, settings: Settings, clock: Clock = system_clock, recover: bool = False) -> Core:
        """`recover` (the daemon only): a corrupt database is kept aside and replaced by a fresh one.
        A CLI call leaves it alone and fails with the error, so two processes never race to move it."""
        catalogue = load_catalogue(settings.catalogue_path())
        tz = ZoneInfo(settings.queue.timezone)
        db = Database(settings.db_path(), settings.storage.synchronous, settings.storage.busy_timeout_ms)
        recovery = None
        if recover:
            now = clock()
            prefixes = sorted({s.prefix for s in catalogue.services()})
            recovery = open_or_recover(db, now, local_day(now, tz).isoformat(), prefixes)
        else:
            db.open()
        return cls(settings, db, catalogue, QueueService(db, catalogue, settings.queue, clock), recovery)

    def close(self) -> None:
        self.db.close()
