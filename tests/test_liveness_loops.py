"""Every long-lived loop of `kiosk run` registers with the watchdog liveness: hang one for real in a
running agent and the WATCHDOG=1 pings to a real NOTIFY_SOCKET stop, with the loop's name in STATUS."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import agent.app as app
from agent.clock import system_clock
from agent.core import Core
from agent.printing import layout
from agent.settings import load_settings
from devices.decoders import PipelineDecoder


class Hang:
    """A switch a loop step blocks on (in its worker thread) while it is on."""

    def __init__(self) -> None:
        self.on = False
        self.release = threading.Event()
        self.trigger: Callable[[], None] = lambda: None  # makes the loop reach the hanging step

    def block(self) -> None:
        if self.on:
            self.release.wait(30)  # bounded: the test releases it long before


def stall_scanner(monkeypatch: pytest.MonkeyPatch, hang: Hang) -> None:
    """The decode the scanner awaits never returns."""
    monkeypatch.setattr(app, "SCANNER_MAX_SILENCE_S", 1.0)

    class Hanging(PipelineDecoder):
        def decode(self, image: Any) -> Any:
            hang.block()
            return super().decode(image)

    monkeypatch.setattr(app, "PipelineDecoder", Hanging)


def stall_printer(monkeypatch: pytest.MonkeyPatch, hang: Hang) -> None:
    """Rendering the ticket the worker awaits never returns (and a ticket is issued to get there)."""
    monkeypatch.setattr(app, "PRINTER_MAX_SILENCE_S", 1.0)
    monkeypatch.setenv("KIOSK_PRINTER__ENABLED", "true")
    monkeypatch.setenv("KIOSK_QUEUE__ENFORCE_HOURS", "false")  # a Sunday run must issue too
    monkeypatch.setenv("KIOSK_PRINTER__DEVICE", f"file:{os.environ['KIOSK_STORAGE__DATA_DIR']}/tickets")
    render = layout.render

    def hanging(*args: Any) -> Any:
        hang.block()
        return render(*args)

    monkeypatch.setattr(layout, "render", hanging)
    hang.trigger = issue_ticket


def issue_ticket() -> None:
    core = Core.open(load_settings(), system_clock)  # another writer on the same file
    try:
        core.queue.take("khai-sinh", source="kiosk")
    finally:
        core.close()


STALLS: dict[str, Callable[[pytest.MonkeyPatch, Hang], None]] = {
    "scanner": stall_scanner,
    "printer": stall_printer,
}


@pytest.fixture
def notify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.setblocking(False)
    for key, value in {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "200000",
                       "KIOSK_STORAGE__DATA_DIR": str(tmp_path / "state"), "KIOSK_MQTT__ENABLED": "false",
                       "KIOSK_WEB__HOST": "127.0.0.1", "KIOSK_WEB__PORT": "0",
                       "KIOSK_CAMERA__ENABLED": "true", "KIOSK_CAMERA__SOURCE": "demo:"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield sock
    sock.close()


async def recv_until(sock: socket.socket, want: Callable[[str], bool], deadline_s: float) -> list[str]:
    loop = asyncio.get_running_loop()
    seen: list[str] = []
    end = time.monotonic() + deadline_s
    while not any(want(m) for m in seen):
        left = end - time.monotonic()
        assert left > 0, f"not seen in {deadline_s} s: {seen[-10:]}"
        data = await asyncio.wait_for(loop.sock_recv(sock, 4096), left)
        seen += data.decode().splitlines()
    return seen


@pytest.mark.parametrize("name", sorted(STALLS))
async def test_hung_loop_withholds_watchdog_and_is_named(name: str, notify: socket.socket,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    hang = Hang()
    STALLS[name](monkeypatch, hang)
    stop = asyncio.Event()
    task = asyncio.create_task(app.run_agent(load_settings(), stop=stop))
    try:
        await recv_until(notify, lambda m: m == "READY=1", 30)
        # Healthy (and idle long past the shortened max silence): pings keep coming.
        await recv_until(notify, lambda m: m == "WATCHDOG=1", 10)
        hang.on = True
        hang.trigger()
        seen = await recv_until(notify, lambda m: m.startswith("STATUS=stalled"), 20)
        status = next(m for m in seen if m.startswith("STATUS=stalled"))
        assert name in status.removeprefix("STATUS=stalled: ").split(", "), status
        # Released, the loop beats again and the pings resume.
        hang.on = False
        hang.release.set()
        await recv_until(notify, lambda m: m == "WATCHDOG=1", 20)
    finally:
        hang.on = False
        hang.release.set()
        stop.set()
        await asyncio.wait_for(task, 30)
