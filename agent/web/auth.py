"""Counter PINs/tokens: constant-time comparison and a lockout after repeated wrong PINs.

A 4-digit PIN is guessable on the LAN in minutes without a lockout; after `MAX_FAILURES` wrong
PINs for a counter within `WINDOW_S`, that counter refuses every PIN until the window has passed.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable

from agent.errors import KioskError, Unauthorized

logger = logging.getLogger(__name__)

MAX_FAILURES = 5
WINDOW_S = 300.0


class TooManyAttempts(KioskError):
    code = "too_many_attempts"
    http_status = 429


class CounterAuth:
    def __init__(self, pins: dict[int, str], clock: Callable[[], float] = time.monotonic) -> None:
        self._pins = dict(pins)
        self._clock = clock
        self._failures: dict[int, list[float]] = {}
        self.failures_total = 0

    def check(self, counter: int, presented: str | None) -> None:
        """Raise Unauthorized / TooManyAttempts unless `presented` is the counter's PIN or token."""
        expected = self._pins.get(counter)
        if not expected:
            raise Unauthorized(f"Quầy {counter} chưa được cấp mã PIN (web.counter_pins).", code="counter_locked")
        now = self._clock()
        recent = [t for t in self._failures.get(counter, []) if now - t < WINDOW_S]
        self._failures[counter] = recent
        if len(recent) >= MAX_FAILURES:
            wait = int(WINDOW_S - (now - recent[0])) + 1
            raise TooManyAttempts(f"Nhập sai mã PIN quá nhiều lần. Thử lại sau {wait} giây.")
        if presented is None or not hmac.compare_digest(presented.encode(), expected.encode()):
            recent.append(now)
            self.failures_total += 1
            logger.warning("wrong PIN for counter %d (%d recent failures)", counter, len(recent))
            raise Unauthorized("Mã PIN của quầy không đúng.", code="wrong_pin")
        self._failures.pop(counter, None)


def presented_pin(authorization: str | None, header_pin: str | None) -> str | None:
    """`Authorization: Bearer <token>` or `X-Counter-Pin: <pin>`."""
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return header_pin.strip() if header_pin else None
