"""The health gate after a switch: commit the new release only if it proves healthy, else roll back by itself.

Healthy = READY within `ready_deadline`, the watchdog fed (never silent longer than `watchdog_s`), no more
than `max_restarts` restarts (a crash loop), and sync and camera healthy for the whole `period`. The
probe is what the service manager knows (systemd in production, the test supervisor in tests).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from agent.release.install import Layout, commit, rollback


@dataclass(frozen=True)
class Health:
    ready: bool
    watchdog_age: float | None  # seconds since the last WATCHDOG=1 (None: never)
    restarts: int
    sync_ok: bool = True
    camera_ok: bool = True


class Probe(Protocol):
    def sample(self) -> Health: ...


@dataclass(frozen=True)
class GateSettings:
    ready_deadline: float = 60.0
    period: float = 300.0
    watchdog_s: float = 30.0
    max_restarts: int = 0
    poll: float = 0.2


@dataclass(frozen=True)
class Verdict:
    committed: bool
    version: str | None
    reason: str = ""


async def run_gate(layout: Layout, probe: Probe, settings: GateSettings,
                   restart: Callable[[], Awaitable[None]]) -> Verdict:
    """Watch the just-switched release; on failure roll back, restart the old one, and record update.failed."""
    version = layout.current_version()
    reason = await _watch(probe, settings)
    if not reason:
        commit(layout)
        return Verdict(True, version)
    rollback(layout, reason)
    _record(layout, {"type": "update.failed", "version": version, "reason": reason,
                     "rolled_back_to": layout.current_version(), "at": time.time()})
    await restart()
    return Verdict(False, version, reason)


async def _watch(probe: Probe, settings: GateSettings) -> str:
    loop = asyncio.get_running_loop()
    start = loop.time()
    ready_at: float | None = None
    while True:
        now = loop.time()
        health = probe.sample()
        if health.restarts > settings.max_restarts:
            return f"crash loop: {health.restarts} restarts"
        if ready_at is None:
            if health.ready:
                ready_at = now
            elif now - start > settings.ready_deadline:
                return f"not READY within {settings.ready_deadline:g}s"
        else:
            if health.watchdog_age is None or health.watchdog_age > settings.watchdog_s:
                return f"watchdog not fed for {settings.watchdog_s:g}s"
            if not health.sync_ok:
                return "sync unhealthy"
            if not health.camera_ok:
                return "camera unhealthy"
            if now - ready_at >= settings.period:
                return ""
        await asyncio.sleep(settings.poll)


def _record(layout: Layout, event: dict[str, object]) -> None:
    # Beside the releases, readable by any release; not yet folded into the SQLite event log (known limit).
    with (layout.root / "update-events.jsonl").open("a") as handle:
        handle.write(json.dumps(event, sort_keys=True) + "\n")
