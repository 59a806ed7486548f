"""systemd integration without a dependency: sd_notify (READY, STATUS, WATCHDOG) and loop liveness.

The watchdog is only fed while every registered loop has beaten recently: a hung event loop, or a
loop stuck on one task, stops the pings and systemd restarts the service (`WatchdogSec=`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)


class Notifier:
    """Sends datagrams to $NOTIFY_SOCKET; does nothing when not run by systemd."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def notify(self, *fields: str) -> None:
        if not self.address:
            return
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            self._sock.sendto("\n".join(fields).encode(), target)
        except OSError as exc:  # systemd gone or socket wrong: the service still runs
            logger.warning("sd_notify failed: %s", exc.strerror)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval() -> float | None:
    """Half of WatchdogSec (systemd's advice), or None when the watchdog is off for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000


class Liveness:
    """Loops call `beat(name)`; `stalled()` names those silent for longer than they promised."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._limits: dict[str, float] = {}
        self._beats: dict[str, float] = {}

    def register(self, name: str, max_silence_s: float) -> None:
        self._limits[name] = max_silence_s
        self._beats[name] = self.clock()

    def beat(self, name: str) -> None:
        self._beats[name] = self.clock()

    def unregister(self, name: str) -> None:
        self._limits.pop(name, None)
        self._beats.pop(name, None)

    def stalled(self) -> list[str]:
        now = self.clock()
        return [name for name, limit in self._limits.items() if now - self._beats[name] > limit]


async def watchdog_loop(notifier: Notifier, liveness: Liveness, interval: float, stop: asyncio.Event) -> None:
    """Ping systemd every `interval` seconds while all loops are alive; say which one stalled otherwise."""
    reported: list[str] = []
    while not stop.is_set():
        stalled = liveness.stalled()
        if not stalled:
            notifier.notify("WATCHDOG=1")
            reported = []
        elif stalled != reported:
            logger.error("loops stalled, withholding the watchdog ping: %s", ", ".join(stalled))
            notifier.notify(f"STATUS=stalled: {', '.join(stalled)}")
            reported = stalled
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


SCREEN_ENV = "screen.env"


def publish_screen_url(host: str, port: int) -> Path | None:
    """Tell kiosk-screen.service which URL to open: `KIOSK_SCREEN_URL=…` in the agent's
    $RUNTIME_DIRECTORY (/run/ward-kiosk), read by the screen unit's EnvironmentFile=. Written before
    READY, from the configured and bound address, so the screen never opens a hard-coded port."""
    folder = os.environ.get("RUNTIME_DIRECTORY")
    if not folder:
        return None
    shown = "127.0.0.1" if host in ("0.0.0.0", "", "::") else f"[{host}]" if ":" in host else host
    path = Path(folder.split(":")[0]) / SCREEN_ENV
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_text(f"KIOSK_SCREEN_URL=http://{shown}:{port}/\n", encoding="utf-8")
        tmp.chmod(0o644)  # the screen unit runs as another user; a URL is no secret
        tmp.replace(path)
    except OSError as exc:
        logger.warning("cannot write the screen URL to %s: %s", path, exc.strerror)
        return None
    return path
