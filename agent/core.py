"""The part of the composition shared by the daemon and every CLI call: settings → store → queue."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from agent.clock import Clock, system_clock
from agent.queue.catalogue import Catalogue, load_catalogue
from agent.queue.service import QueueService
from agent.settings import Settings
from agent.store.db import Database


@dataclass
class Core:
    settings: Settings
    db: Database
    catalogue: Catalogue
    queue: QueueService

    @classmethod
    def open(cls, settings: Settings, clock: Clock = system_clock) -> Core:
        catalogue = load_catalogue(settings.catalogue_path())
        ZoneInfo(settings.queue.timezone)
        db = Database(settings.db_path(), settings.storage.synchronous, settings.storage.busy_timeout_ms).open()
        return cls(settings, db, catalogue, QueueService(db, catalogue, settings.queue, clock))

    def close(self) -> None:
        self.db.close()
