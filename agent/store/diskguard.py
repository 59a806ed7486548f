"""Warn before the disk is full: a `device.fault` (device `disk`) when free space falls under the
threshold, `device.recovered` when it is back, so ops sees it in the log and telemetry before SQLite
starts refusing writes (at which point tickets stop: see README "Known limits")."""

from __future__ import annotations

import logging
import shutil
from typing import Any

from agent.clock import Clock
from agent.errors import KioskError
from agent.store import events
from agent.store.db import Database

logger = logging.getLogger(__name__)


class DiskGuard:
    def __init__(self, db: Database, clock: Clock, low_mb: float, reserve_mb: float = 0.0) -> None:
        self.db = db
        self.clock = clock
        self.low_mb = low_mb
        self.reserve_mb = reserve_mb  # under this, low-value writes are refused (tickets keep the rest)
        self.reserving = False
        self.low = False
        self.free_mb: float | None = None

    def check(self) -> bool:
        """Measure the data folder's free space; log a change of state as an event. True while low."""
        try:
            self.free_mb = shutil.disk_usage(self.db.path.parent).free / 1e6
        except OSError as exc:
            logger.warning("cannot measure free space of %s: %s", self.db.path.parent, exc.strerror)
            return self.low
        reserving = self.free_mb < self.reserve_mb
        if reserving != self.reserving:
            events.refuse_low_value(self.db.conn, reserving)
            self.reserving = reserving
            (logger.warning if reserving else logger.info)(
                "disk under its %.0f MB reserve: ratings, feedback and reprints %s", self.reserve_mb,
                "refused" if reserving else "accepted again")
        low = self.free_mb < self.low_mb
        if low == self.low:
            return low
        try:
            with self.db.write() as conn:
                if low:
                    events.append(conn, "device.fault", {"device": "disk", "fault": "low_space",
                                                         "detail": f"{self.free_mb:.0f} MB free, "
                                                                   f"threshold {self.low_mb:.0f} MB"}, self.clock())
                else:
                    events.append(conn, "device.recovered", {"device": "disk"}, self.clock())
        except KioskError as exc:  # the disk may already be too full for the event: keep the state, retry later
            logger.error("disk space %s, and the event cannot be written: %s", "low" if low else "back", exc.message)
            return low
        (logger.warning if low else logger.info)("disk space %s: %.0f MB free (threshold %.0f MB)",
                                                 "low" if low else "back to normal", self.free_mb, self.low_mb)
        self.low = low
        return low

    def public(self) -> dict[str, Any]:
        return {"low": self.low, "free_mb": None if self.free_mb is None else round(self.free_mb, 1),
                "threshold_mb": self.low_mb, "reserve_mb": self.reserve_mb, "refusing_low_value": self.reserving}
