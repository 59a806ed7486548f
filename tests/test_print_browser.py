"""The kiosk screen when the printer is out of paper, and the counter console's reprint button (Chromium)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from playwright.async_api import Browser

from agent.clock import system_clock
from agent.core import Core
from agent.printing.service import PrintService
from agent.printing.web import printer_routes
from agent.printing.wiring import open_configured_printer
from agent.settings import load_settings
from agent.store import events
from agent.store.feed import EventFeed
from agent.web.server import WebServer
from devices.decoders import PipelineDecoder
from tests.browsers import require_chromium
from tests.conftest import CATALOGUE, ROOT
from tests.printer_emulator import TcpPrinterEmulator, tcp_printer
from tests.test_web_browser import LANDSCAPE, PIN, PORTRAIT, open_page, take_by_touch

require_chromium()
ARTIFACTS = ROOT / "test-artifacts"


class PrintStack:
    def __init__(self, tmp_path: Path, printer: TcpPrinterEmulator) -> None:
        settings = load_settings(storage={"data_dir": str(tmp_path / "data")},
                                 queue={"enforce_hours": False, "catalogue": str(CATALOGUE)},
                                 web={"counter_pins": {1: PIN}},
                                 printer={"enabled": True, "device": printer.url, "poll_seconds": 0.2,
                                          "status_timeout_seconds": 0.3, "retry_max_seconds": 0.5})
        self.core = Core.open(settings)
        self.feed = EventFeed(self.core.db, poll_interval=0.05)
        self.service = PrintService(self.core, self.feed, open_configured_printer(settings), system_clock)
        self.server = WebServer(self.core, self.feed, host="127.0.0.1", port=0,
                                extra_routes=printer_routes(self.core, self.service, system_clock))
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.server.start()
        self.task = asyncio.create_task(self.service.run(self.stop))

    async def close(self) -> None:
        self.stop.set()
        if self.task is not None:
            await asyncio.wait_for(self.task, 5)
        await self.server.stop()
        self.feed.close()
        self.core.close()

    def url(self, path: str) -> str:
        return self.server.url + path

    async def wait_event(self, type_: str) -> events.Event:
        async def until() -> events.Event:
            while True:
                found = [e for e in events.since(self.core.db.conn, 0, 100_000) if e.type == type_]
                if found:
                    return found[-1]
                await self.feed.changed(0.2)

        return await asyncio.wait_for(until(), 10)


@pytest.fixture
async def printing(tmp_path: Path) -> AsyncIterator[tuple[PrintStack, TcpPrinterEmulator]]:
    with tcp_printer() as printer:
        stack = PrintStack(tmp_path, printer)
        await stack.start()
        yield stack, printer
        await stack.close()


async def test_out_of_paper_is_told_on_screen_and_the_counter_reprints(
        printing: tuple[PrintStack, TcpPrinterEmulator], browser: Browser) -> None:
    stack, printer = printing
    printer.emulator.state.paper_end = True
    await stack.wait_event("printer.fault")
    kiosk = await open_page(browser, stack.url("/"), PORTRAIT)
    number = await take_by_touch(kiosk)
    await kiosk.wait_for_selector("#t-print:not([hidden])", timeout=8000)
    notice = await kiosk.text_content("#t-print") or ""
    assert "Máy in đã hết giấy." in notice and "vẫn được cấp" in notice
    assert "large" in (await kiosk.get_attribute("#t-qr", "class") or "")
    ARTIFACTS.mkdir(exist_ok=True)
    await kiosk.screenshot(path=str(ARTIFACTS / "kiosk-printer-out-of-paper.png"))
    assert kiosk.js_errors == []  # type: ignore[attr-defined]
    # Paper is back: the ticket prints after all (once), and a second ticket prints with no notice.
    printer.emulator.state.paper_end = False
    first = await asyncio.to_thread(printer.emulator.wait_tickets, 1, 10.0)
    assert len(first) == 1
    await kiosk.click("#ticket-done")
    second = await take_by_touch(kiosk)
    await asyncio.to_thread(printer.emulator.wait_tickets, 2, 10.0)
    assert second != number and await kiosk.is_hidden("#t-print")
    # The counter calls the first ticket and reprints it from the console.
    console = await open_page(browser, stack.url("/counter/1"), LANDSCAPE)
    await console.fill("#pin", PIN)
    await console.click("#login button[type=submit]")
    await console.wait_for_selector("#desk:not([hidden])", timeout=5000)
    await console.click('[data-action="next"]')
    await console.wait_for_function("n => document.querySelector('#cur-number').textContent === n", arg=number,
                                    timeout=5000)
    await console.click("#reprint")
    await console.wait_for_function("() => document.querySelector('#msg').textContent.includes('Đang in lại')",
                                    timeout=5000)
    # The console shows the reprinted ticket with the printer's own layout.
    await console.wait_for_function("() => { const i = document.querySelector('#reprint-preview'); "
                                    "return !i.hidden && i.complete && i.naturalWidth === 576; }", timeout=5000)
    ARTIFACTS.mkdir(exist_ok=True)
    await console.screenshot(path=str(ARTIFACTS / "counter-reprint.png"))
    tickets = await asyncio.to_thread(printer.emulator.wait_tickets, 3, 10.0)
    assert len(tickets) == 3
    decoded = [d.text for d in PipelineDecoder().decode(np.ascontiguousarray(tickets[2].image))]
    ticket_id = stack.core.queue.get(number).id
    assert decoded == [f"WKT1:{ticket_id}"]
    assert console.js_errors == []  # type: ignore[attr-defined]
