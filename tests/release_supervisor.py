"""A stand-in for systemd (not booted here): runs releases/current/bin/kiosk run with NOTIFY_SOCKET and
WATCHDOG_USEC, records READY and WATCHDOG=1, kills a process whose watchdog lapses, restarts on exit."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from pathlib import Path

from agent.release.gate import Health


class Supervisor:
    def __init__(self, root: Path, watchdog_s: float = 1.0) -> None:
        self.root = root
        self.watchdog_s = watchdog_s
        self.restarts = 0
        self.ready = False
        self.last_watchdog: float | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self._sock_path = str(root / "notify.sock")
        self._sock: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def sample(self) -> Health:
        age = None if self.last_watchdog is None else time.monotonic() - self.last_watchdog
        return Health(ready=self.ready, watchdog_age=age, restarts=self.restarts)

    async def start(self) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._sock_path)
        self._sock.bind(self._sock_path)
        self._sock.setblocking(False)
        asyncio.get_running_loop().add_reader(self._sock.fileno(), self._on_notify)
        self._task = asyncio.create_task(self._loop())

    async def restart(self) -> None:
        """Like `systemctl restart`: a fresh process of whatever `current` now points at, counters reset."""
        self.restarts = -1  # the kill below is counted as one restart by the loop
        self.ready, self.last_watchdog = False, None  # "activating" until the new process says READY
        await self._kill()

    async def stop(self) -> None:
        self._stopping = True
        await self._kill()
        if self._task is not None:
            await asyncio.wait_for(self._task, 10)
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()

    async def _kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await asyncio.wait_for(self.proc.wait(), 10)

    def _on_notify(self) -> None:
        assert self._sock is not None
        with contextlib.suppress(BlockingIOError):
            while True:
                msg = self._sock.recv(4096).decode()
                if "READY=1" in msg:
                    self.ready = True
                if "WATCHDOG=1" in msg:
                    self.last_watchdog = time.monotonic()

    async def _loop(self) -> None:
        first = True
        for _ in range(1000):  # bounded: a test never needs that many restarts
            if self._stopping:
                return
            if not first:
                self.restarts += 1
                await asyncio.sleep(0.2)  # RestartSec
                if self._stopping:
                    return
            first = False
            self.ready, self.last_watchdog = False, None
            env = {**os.environ, "NOTIFY_SOCKET": self._sock_path, "WATCHDOG_USEC": str(int(self.watchdog_s * 1e6))}
            self.proc = await asyncio.create_subprocess_exec(
                str(self.root / "releases" / "current" / "bin" / "kiosk"), "run", env=env)
            while self.proc.returncode is None:
                if self._stopping:
                    self.proc.kill()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.proc.wait(), 0.1)
                if self.last_watchdog is not None and time.monotonic() - self.last_watchdog > self.watchdog_s:
                    self.proc.kill()  # WatchdogSec lapsed: systemd kills with SIGABRT, then restarts
                    await self.proc.wait()
