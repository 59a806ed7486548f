"""Printed tickets: time from the touch to the last byte at the printer, and bytes per ticket.

    .venv/bin/python bench/print.py [--n 30] [--paper 80]

A touch is `POST /api/tickets` over HTTP to the real web server; the ticket goes through the event
log, the print service (layout with Pillow, raster, DLE EOT status before and after) to the ESC/POS
emulator on a TCP port (tests/printer_emulator.py), which stamps the last byte it receives. The
baseline, in the same run, is the same number of bytes sent over a fresh TCP connection to the same
emulator: what any way of printing this ticket costs at least.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

# The repository instead of bench/ first on the path: bench/queue.py would shadow the stdlib's queue.
sys.path.remove(str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from agent.clock import system_clock
from agent.core import Core
from agent.printing import layout
from agent.printing.service import PrintService
from agent.printing.web import printer_routes
from agent.printing.wiring import open_configured_printer
from agent.settings import DEFAULT_CATALOGUE, load_settings
from agent.store.feed import EventFeed
from agent.web.server import WebServer
from devices import escpos
from tests.printer_emulator import TcpPrinterEmulator

TARGET_P95_MS = 300.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def render_only(paper: int, count: int) -> list[float]:
    """Baseline: the layout (Pillow) and the ESC/POS encoding alone, no HTTP, log or device."""
    view = layout.TicketView(office="Bộ phận Tiếp nhận và Trả kết quả – UBND Phường Sài Gòn", number="A012",
                             service="Đăng ký khai sinh", priority=None, ahead=3, wait_minutes=12,
                             issued_at=datetime(2026, 11, 30, 9, 5), qr="WKT1:0193d7a1-2b3c-7def-8abc-0123456789ab")
    width = 576 if paper == 80 else 384
    out = []
    for _ in range(count):
        start = time.perf_counter()
        rows, w, h = layout.raster_rows(layout.render(view, width))
        escpos.ticket_bytes(rows, w, h)
        out.append((time.perf_counter() - start) * 1000)
    return out


def raw_send(printer: TcpPrinterEmulator, size: int, count: int) -> list[float]:
    """Baseline: one ticket's worth of bytes (a valid raster of that size), connect + send + cut."""
    row_bytes = 72
    rows = max(1, (size - 16) // row_bytes)
    body = (b"\x1b@" + bytes([0x1D, 0x76, 0x30, 0, row_bytes, 0, rows & 0xFF, rows >> 8])
            + bytes(row_bytes * rows) + b"\x1dV\x01")
    out = []
    for i in range(count):
        start = time.perf_counter()
        with socket.create_connection(("127.0.0.1", printer.port)) as sock:
            sock.sendall(body)
            printer.emulator.wait_tickets(i + 1, 5)
        out.append((printer.last_byte_at - start) * 1000)
    return out


async def kiosk_run(tmp: Path, printer: TcpPrinterEmulator, n: int, paper: int) -> tuple[list[float], list[int]]:
    settings = load_settings(storage={"data_dir": str(tmp / "data")},
                             queue={"enforce_hours": False, "catalogue": str(DEFAULT_CATALOGUE)},
                             printer={"enabled": True, "device": printer.url, "paper_width_mm": paper},
                             # one bench client touches far faster than a resident: lift the per-client limit
                             web={"resident_burst": 10_000, "resident_per_minute": 10_000})
    core = Core.open(settings)
    feed = EventFeed(core.db)
    service = PrintService(core, feed, open_configured_printer(settings), system_clock)
    server = WebServer(core, feed, host="127.0.0.1", port=0, extra_routes=printer_routes(core, service,
                                                                                          system_clock))
    await server.start()
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    latencies: list[float] = []
    sizes: list[int] = []
    base = len(printer.emulator.tickets)
    try:
        async with aiohttp.ClientSession(server.url) as http:
            for i in range(n + 3):  # 3 warm-up tickets (fonts, first connection) are not counted
                start = time.perf_counter()
                async with http.post("/api/tickets", json={"service": "khai-sinh"}) as res:
                    assert res.status == 201, await res.text()
                got = await asyncio.to_thread(printer.emulator.wait_tickets, base + i + 1, 10.0)
                assert len(got) >= base + i + 1, "ticket not printed"
                if i >= 3:
                    latencies.append((printer.last_byte_at - start) * 1000)
                    sizes.append(service.stats.bytes_sent // max(1, service.stats.printed))
    finally:
        stop.set()
        await task
        await server.stop()
        feed.close()
        core.close()
    return latencies, sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=30, help="tickets per paper width")
    parser.add_argument("--paper", type=int, choices=(58, 80), action="append", help="paper width(s)")
    args = parser.parse_args()
    papers = args.paper or [80, 58]
    print(f"touch (POST /api/tickets) → last byte at the ESC/POS emulator on TCP, n={args.n} per width")
    print(f"{'':<28}{'median ms':>10}{'p95 ms':>10}{'bytes/ticket':>14}")
    printer = TcpPrinterEmulator().start()
    try:
        for paper in papers:
            with tempfile.TemporaryDirectory() as tmp:
                latencies, sizes = asyncio.run(kiosk_run(Path(tmp), printer, args.n, paper))
            size = int(statistics.median(sizes))
            printer.emulator.tickets.clear()
            raw = raw_send(printer, size, args.n)
            printer.emulator.tickets.clear()
            render = render_only(paper, args.n)
            for name, values in ((f"kiosk, {paper} mm", latencies), ("  layout + raster only", render),
                                 ("  raw TCP send, same bytes", raw)):
                print(f"{name:<28}{statistics.median(values):>10.1f}{pct(values, 0.95):>10.1f}{size:>14}")
            share = statistics.median(render) / statistics.median(latencies)
            verdict = "ok" if pct(latencies, 0.95) <= TARGET_P95_MS else "OVER"
            print(f"  layout + raster = {share:.0%} of the kiosk median"
                  + (f";  target p95 ≤ {TARGET_P95_MS:.0f} ms for 80 mm: {verdict}" if paper == 80 else ""))
    finally:
        printer.stop()


if __name__ == "__main__":
    main()
