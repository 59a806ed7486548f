"""The printer device layer against the ESC/POS emulator: TCP, a pty as USB/serial, and every bad input."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agent.errors import ConfigError
from agent.printing import layout
from devices import escpos
from devices.decoders import PipelineDecoder
from devices.printer import PrinterError, PrintJob, open_printer, parse_device, usb_device_for
from tests.conftest import ROOT
from tests.printer_emulator import PtyPrinterEmulator, tcp_printer

ARTIFACTS = ROOT / "test-artifacts"
TICKET_ID = "0193d7a1-2b3c-7def-8abc-0123456789ab"


def sample_view(number: str = "A012") -> layout.TicketView:
    return layout.TicketView(
        office="Bộ phận Tiếp nhận và Trả kết quả – UBND Phường Sài Gòn", number=number,
        service="Chứng thực bản sao từ bản chính", priority="Người cao tuổi", ahead=3, wait_minutes=12,
        issued_at=datetime(2026, 11, 30, 9, 5), qr=f"WKT1:{TICKET_ID}")


def job_for_view(view: layout.TicketView, width: int) -> PrintJob:
    image = layout.render(view, width)
    rows, w, h = layout.raster_rows(image)
    return PrintJob(view.number, escpos.ticket_bytes(rows, w, h), lambda: layout.png(image))


@pytest.mark.parametrize(("paper", "width"), [(58, 384), (80, 576)])
def test_tcp_ticket_comes_out_of_the_emulator_with_a_readable_qr(paper: int, width: int) -> None:
    with tcp_printer() as server:
        printer = open_printer(server.url)
        try:
            assert printer.status() is not None and printer.status().ok  # type: ignore[union-attr]
            printer.print(job_for_view(sample_view(), width))
            tickets = server.emulator.wait_tickets(1)
        finally:
            printer.close()
    assert len(tickets) == 1 and tickets[0].cut
    image = tickets[0].image
    assert image.shape[1] == width and image.shape[0] > width  # a tall ticket, as wide as the paper
    assert server.emulator.unknown == []
    found = [d.text for d in PipelineDecoder().decode(np.ascontiguousarray(image))]
    assert found == [f"WKT1:{TICKET_ID}"]
    ARTIFACTS.mkdir(exist_ok=True)
    Image.fromarray(image).save(ARTIFACTS / f"printed-ticket-{paper}mm.png")


def test_status_bits_paper_end_near_end_cover_open() -> None:
    with tcp_printer() as server:
        printer = open_printer(server.url)
        try:
            server.emulator.state.near_end = True
            status = printer.status()
            assert status is not None and status.ok and status.paper_near_end
            server.emulator.state.paper_end = True
            status = printer.status()
            assert status is not None and status.faults == ("paper_end",)
            server.emulator.state.paper_end = False
            server.emulator.state.cover_open = True
            status = printer.status()
            assert status is not None and status.faults == ("cover_open",)
        finally:
            printer.close()


def test_garbage_and_silence_and_unplugged_are_clear_errors() -> None:
    with tcp_printer() as server:
        printer = open_printer(server.url, status_timeout=0.3)
        try:
            server.emulator.state.garbage = True
            with pytest.raises(PrinterError) as garbage:
                printer.status()
            assert garbage.value.reason == "garbage" and "not a DLE EOT reply" in garbage.value.detail
            server.emulator.state.garbage = False
            server.emulator.state.silent = True
            with pytest.raises(PrinterError) as silent:
                printer.status()
            assert silent.value.reason == "no_response"
            server.emulator.state.silent = False
            assert printer.status() is not None  # reconnects and works again
            # Unplugged mid-ticket: the link drops after a few kB of raster.
            server.emulator.state.drop_after = 4000
            printer.print(job_for_view(sample_view(), 576))  # may all fit in the socket buffer...
            with pytest.raises(PrinterError) as dropped:
                printer.status()  # ...but the next question shows the link is gone
            assert dropped.value.reason in ("disconnected", "no_response")
            assert server.emulator.tickets == []  # nothing half-printed counted as a ticket
        finally:
            printer.close()
    closed = open_printer(server.url)  # the emulator is gone: nothing listens on the port
    with pytest.raises(PrinterError) as offline:
        closed.status()
    assert offline.value.reason == "offline"


@pytest.mark.parametrize("kind", ["usb", "serial"])
def test_device_file_path_on_a_pty(kind: str) -> None:
    pty = PtyPrinterEmulator().start()
    spec = f"usb:{pty.path}" if kind == "usb" else f"serial:{pty.path}?baud=19200"
    printer = open_printer(spec)
    try:
        pty.emulator.state.near_end = True
        status = printer.status()
        assert status is not None and status.ok and status.paper_near_end
        printer.print(job_for_view(sample_view("B007"), 384))
        tickets = pty.emulator.wait_tickets(1)
        assert len(tickets) == 1
        found = [d.text for d in PipelineDecoder().decode(np.ascontiguousarray(tickets[0].image))]
        assert found == [f"WKT1:{TICKET_ID}"]
    finally:
        printer.close()
        pty.stop()


def test_folder_printer_writes_png_and_bytes(tmp_path: Path) -> None:
    printer = open_printer("file:tickets", base=tmp_path)
    printer.print(job_for_view(sample_view(), 576))
    png = tmp_path / "tickets" / "A012.png"
    assert png.is_file() and (tmp_path / "tickets" / "A012.escpos").stat().st_size > 10_000
    with Image.open(png) as image:
        assert image.width == 576


def test_bad_device_specs_and_a_missing_usb_printer(tmp_path: Path) -> None:
    for spec, words in [("printer", "expected tcp://"), ("tcp://", "tcp://HOST:PORT"), ("usb:04b8", "VID:PID"),
                        ("serial:/dev/ttyUSB0?baud=123", "baud must be"), ("lpt:1", "unknown printer kind")]:
        with pytest.raises(ValueError, match=words):
            parse_device(spec)
    with pytest.raises(PrinterError) as missing:
        usb_device_for(0x04B8, 0x0E15, sysfs=tmp_path)
    assert "04b8:0e15" in missing.value.detail
    # A device path that is not a serial port is refused with the reason.
    plain = tmp_path / "not-a-tty"
    plain.write_bytes(b"")
    with pytest.raises(PrinterError) as not_tty:
        open_printer(f"serial:{plain}?baud=9600").status()
    assert not_tty.value.reason == "offline" and "not a serial port" in not_tty.value.detail


def test_usb_vid_pid_resolves_through_sysfs(tmp_path: Path) -> None:
    # The layout usblp makes: /sys/class/usbmisc/lp0/device -> …/1-1/1-1:1.0, idVendor in 1-1.
    device = tmp_path / "devices" / "1-1"
    interface = device / "1-1:1.0"
    interface.mkdir(parents=True)
    (device / "idVendor").write_text("04b8\n")
    (device / "idProduct").write_text("0e15\n")
    usbmisc = tmp_path / "usbmisc" / "lp3"
    usbmisc.mkdir(parents=True)
    os.symlink(interface, usbmisc / "device")
    assert usb_device_for(0x04B8, 0x0E15, sysfs=tmp_path / "usbmisc") == "/dev/usb/lp3"


def test_a_logo_that_is_not_an_image(tmp_path: Path) -> None:
    fake = tmp_path / "logo.png"
    fake.write_text("this is not a picture")
    with pytest.raises(ConfigError) as bad:
        layout.load_logo(fake, 576)
    assert bad.value.code == "logo_invalid" and "not an image" in bad.value.message
    with pytest.raises(ConfigError, match="does not exist"):
        layout.load_logo(tmp_path / "missing.png", 576)
    good = tmp_path / "good.png"
    Image.new("RGB", (600, 200), "red").save(good)
    logo = layout.load_logo(good, 576)
    assert logo.mode == "1" and logo.width <= 288
