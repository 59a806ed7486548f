"""Tickets as the queue sees them, and their states."""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass
from typing import Any

WAITING = "waiting"
CALLED = "called"
SERVING = "serving"
HELD = "held"
DONE = "done"
NO_SHOW = "no_show"
CANCELLED = "cancelled"

ACTIVE = (CALLED, SERVING)
FINAL = (DONE, NO_SHOW, CANCELLED)

STATE_NAMES_VI = {
    WAITING: "đang chờ",
    CALLED: "đã gọi",
    SERVING: "đang phục vụ",
    HELD: "tạm giữ",
    DONE: "đã xong",
    NO_SHOW: "vắng mặt",
    CANCELLED: "đã hủy",
}


@dataclass(frozen=True, slots=True)
class Ticket:
    id: str
    day: str
    number: str
    service: str
    first_service: str
    priority: str | None
    state: str
    counter: int | None
    recalls: int
    source: str
    arrived_at: str
    arrival: int
    called_at: str | None
    last_called_at: str | None
    serving_at: str | None
    finished_at: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Ticket:
        return cls(**{name: row[name] for name in cls.__slots__})

    def public(self) -> dict[str, Any]:
        """What screens, the CLI and events may show: no personal data ever lives on a ticket."""
        data = asdict(self)
        data.pop("arrival")
        return data

    def ref(self) -> dict[str, Any]:
        """The compact identification carried by every ticket event."""
        return {"ticket": self.id, "number": self.number, "service": self.service, "priority": self.priority}


COLUMNS = ", ".join(Ticket.__slots__)
