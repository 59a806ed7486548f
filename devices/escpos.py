"""The few ESC/POS commands a ticket needs, written here rather than through python-escpos.

A ticket is one raster image (Vietnamese never depends on the printer's code pages), so the
whole protocol we speak is: ESC @ (initialise), GS v 0 (raster bit image), ESC d (feed), GS V
(cut) and DLE EOT n (real-time status). Each is a handful of bytes documented in Epson's
ESC/POS reference; owning them keeps the status bits explicit and testable and avoids a library
that pulls in pyusb, pyserial, Pillow and qrcode versions of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ESC = 0x1B
GS = 0x1D
DLE = 0x10
EOT = 0x04

INIT = bytes([ESC, 0x40])
MAX_RASTER_HEIGHT = 2303  # GS v 0: yL/yH, many printers cap one band; we send bands well below this
BAND_ROWS = 256


def raster(rows: bytes, width_dots: int, height: int) -> bytes:
    """GS v 0 for a 1-bit image, `rows` packed MSB first, 1 = black dot, width a multiple of 8.

    The image is sent in bands of BAND_ROWS rows: printers with a small receive buffer stall on one
    huge command, and a band boundary is invisible on paper.
    """
    if width_dots % 8:
        raise ValueError("raster width must be a multiple of 8 dots")
    row_bytes = width_dots // 8
    if len(rows) != row_bytes * height:
        raise ValueError(f"raster data is {len(rows)} bytes, expected {row_bytes * height}")
    out = bytearray()
    for top in range(0, height, BAND_ROWS):
        band = min(BAND_ROWS, height - top)
        out += bytes([GS, 0x76, 0x30, 0x00, row_bytes & 0xFF, row_bytes >> 8, band & 0xFF, band >> 8])
        out += rows[top * row_bytes:(top + band) * row_bytes]
    return bytes(out)


def feed(lines: int) -> bytes:
    return bytes([ESC, 0x64, max(0, min(lines, 255))])


def cut(partial: bool = True) -> bytes:
    """GS V m: 1 (partial, one point left uncut, so the ticket hangs until torn) or 0 (full)."""
    return bytes([GS, 0x56, 0x01 if partial else 0x00])


def status_request(n: int) -> bytes:
    """DLE EOT n: 1 printer, 2 offline cause, 3 error cause, 4 roll paper sensor."""
    if n not in (1, 2, 3, 4):
        raise ValueError("DLE EOT n is 1..4")
    return bytes([DLE, EOT, n])


STATUS_QUERY = b"".join(status_request(n) for n in (1, 2, 3, 4))


def is_status_byte(value: int) -> bool:
    """Every DLE EOT reply has bit 1 and bit 4 set and bits 0 and 7 clear (0xx1xx10)."""
    return value & 0x93 == 0x12


@dataclass(frozen=True, slots=True)
class PrinterStatus:
    """What the four real-time status bytes say; `faults` lists the reasons printing cannot go on."""

    faults: tuple[str, ...] = ()
    paper_near_end: bool = False
    raw: bytes = field(default=b"")

    @property
    def ok(self) -> bool:
        return not self.faults


class StatusGarbage(ValueError):
    """The printer answered DLE EOT with bytes that are not status bytes."""


def parse_status(reply: bytes) -> PrinterStatus:
    """The replies to STATUS_QUERY (four bytes, in order) → faults and the paper-low warning."""
    if len(reply) != 4 or not all(is_status_byte(b) for b in reply):
        raise StatusGarbage(f"not a DLE EOT reply: {reply[:16].hex(' ')}")
    printer, offline, error, paper = reply
    faults: list[str] = []
    if paper & 0x60:
        faults.append("paper_end")
    if offline & 0x04:
        faults.append("cover_open")
    if error & 0x08:
        faults.append("cutter_error")
    if error & 0x20:
        faults.append("unrecoverable_error")
    if error & 0x40:
        faults.append("head_overheated")
    if printer & 0x08 and not faults:
        faults.append("offline")  # offline for a reason the other bytes do not name
    return PrinterStatus(faults=tuple(faults), paper_near_end=bool(paper & 0x0C), raw=bytes(reply))


def ticket_bytes(rows: bytes, width_dots: int, height: int, *, cut_paper: bool = True, feed_lines: int = 4) -> bytes:
    """A whole ticket: initialise, the raster, feed past the cutter, cut."""
    out = INIT + raster(rows, width_dots, height) + feed(feed_lines)
    return out + cut(partial=True) if cut_paper else out
