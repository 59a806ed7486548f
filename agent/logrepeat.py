"""A logging filter that keeps a repeating line from filling the disk.

A fault that recurs in a tight loop (accept() failing with "too many open files", a dead device)
once wrote 155 MB of the same traceback. Per message template, the filter lets `burst` records
through in each `window_s`, drops the rest, and tells the next record that passes how many it dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

_MEMORY = 1024  # templates remembered; a new one past this evicts the oldest


class RepeatFilter(logging.Filter):
    def __init__(self, burst: int = 5, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.burst = burst
        self.window_s = window_s
        self.clock = clock
        self._seen: dict[tuple[str, int, str], list[float]] = {}  # key → [window start, passed, suppressed]

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg))  # the template: arguments vary between repeats
        now = self.clock()
        entry = self._seen.get(key)
        if entry is None or now - entry[0] >= self.window_s:
            suppressed = int(entry[2]) if entry is not None else 0
            if entry is None and len(self._seen) >= _MEMORY:
                self._seen.pop(next(iter(self._seen)))
            self._seen[key] = [now, 1, 0]
            if suppressed:
                record.msg = f"{record.msg} ({suppressed} similar messages suppressed)"
            return True
        if entry[1] < self.burst:
            entry[1] += 1
            return True
        entry[2] += 1
        return False


def install(burst: int = 5, window_s: float = 60.0) -> None:
    """Put the filter on every handler of the root logger (call after logging is configured)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RepeatFilter) for f in handler.filters):
            handler.addFilter(RepeatFilter(burst, window_s))
