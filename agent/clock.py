"""Time: UTC RFC 3339 for events, Asia/Ho_Chi_Minh for display and for the queue's day."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")

# A clock is any callable returning an aware UTC datetime; tests inject a fixed or stepping one.
Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


def rfc3339(at: datetime) -> str:
    """UTC with millisecond precision and a Z suffix, as the event envelope requires."""
    at = at.astimezone(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def parse_rfc3339(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def local_day(at: datetime, tz: ZoneInfo = LOCAL_TZ) -> date:
    """The office's calendar day: ticket numbers restart at local midnight."""
    return at.astimezone(tz).date()


def local_display(at: datetime, tz: ZoneInfo = LOCAL_TZ) -> str:
    return at.astimezone(tz).strftime("%H:%M %d/%m/%Y")


class FakeClock:
    """A settable clock for tests and simulations."""

    def __init__(self, start: datetime) -> None:
        self.now = start.astimezone(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


def monotonic() -> float:
    return time.monotonic()
