"""A thermal printer emulator speaking ESC/POS: over TCP (like port 9100) or on a pty (USB/serial path).

Its parser is written from the ESC/POS reference independently of devices/escpos.py, so a test that
decodes a ticket here checks our encoder against the protocol, not against itself. It decodes GS v 0
rasters back into an image, counts cuts, and answers DLE EOT from a settable state (paper end,
near end, cover open); it can also stay silent, answer garbage, or drop the link mid-ticket.
"""

from __future__ import annotations

import os
import select
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Gray = npt.NDArray[np.uint8]


@dataclass
class Ticket:
    image: Gray  # 0 black, 255 white
    raw_bytes: int
    cut: bool


@dataclass
class EscPosState:
    paper_end: bool = False
    near_end: bool = False
    cover_open: bool = False
    silent: bool = False  # never answers DLE EOT
    garbage: bool = False  # answers DLE EOT with bytes that are not status bytes
    drop_after: int | None = None  # close the link after this many raster bytes (unplugged mid-ticket)


@dataclass
class EscPosEmulator:
    state: EscPosState = field(default_factory=EscPosState)
    tickets: list[Ticket] = field(default_factory=list)
    status_requests: int = 0
    discarded_rasters: int = 0  # rasters received while out of paper or with the cover open
    unknown: list[int] = field(default_factory=list)
    _buffer: bytearray = field(default_factory=bytearray)
    _bands: list[Gray] = field(default_factory=list)
    _ticket_bytes: int = 0
    _raster_bytes: int = 0
    changed: threading.Condition = field(default_factory=threading.Condition)

    def status_byte(self, n: int) -> int:
        s = self.state
        value = 0x12
        if n == 1 and (s.paper_end or s.cover_open):
            value |= 0x08
        if n == 2:
            value |= (0x04 if s.cover_open else 0) | (0x20 if s.paper_end else 0)
        if n == 4:
            value |= (0x0C if s.near_end else 0) | (0x60 if s.paper_end else 0)
        return value

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """Bytes from the host → (reply bytes, keep the link open)."""
        self._buffer += data
        reply = bytearray()
        keep = True
        while self._buffer:
            b = self._buffer
            if b[0] == 0x10:  # DLE EOT n
                if len(b) < 3:
                    break
                if b[1] == 0x04 and b[2] in (1, 2, 3, 4):
                    self.status_requests += 1
                    if self.state.garbage:
                        reply += b"\xff"
                    elif not self.state.silent:
                        reply.append(self.status_byte(b[2]))
                    del b[:3]
                    continue
            elif b[0] == 0x1B:  # ESC @ / ESC d n
                if len(b) < 2:
                    break
                if b[1] == 0x40:
                    self._bands.clear()
                    self._ticket_bytes = 0
                    del b[:2]
                    continue
                if b[1] == 0x64:
                    if len(b) < 3:
                        break
                    del b[:3]
                    continue
            elif b[0] == 0x1D:
                if len(b) < 3:
                    break
                if b[1] == 0x56:  # GS V m
                    del b[:3]
                    self._finish(cut=True)
                    continue
                if b[1] == 0x76 and b[2] == 0x30:  # GS v 0 m xL xH yL yH d...
                    if len(b) < 8:
                        break
                    row_bytes = b[4] | (b[5] << 8)
                    rows = b[6] | (b[7] << 8)
                    size = row_bytes * rows
                    if self.state.drop_after is not None and self._raster_bytes + len(b) - 8 >= self.state.drop_after:
                        self._raster_bytes = 0
                        self._buffer.clear()
                        self._bands.clear()
                        self.state.drop_after = None
                        keep = False
                        break
                    if len(b) < 8 + size:
                        break
                    packed = np.frombuffer(bytes(b[8:8 + size]), dtype=np.uint8).reshape(rows, row_bytes)
                    bits = np.unpackbits(packed, axis=1)
                    self._bands.append(np.where(bits == 1, 0, 255).astype(np.uint8))
                    self._raster_bytes += size
                    self._ticket_bytes += 8 + size
                    del b[:8 + size]
                    continue
            self.unknown.append(b[0])
            del b[:1]
        return bytes(reply), keep

    def _finish(self, cut: bool) -> None:
        with self.changed:
            if self._bands:
                if self.state.paper_end or self.state.cover_open:
                    self.discarded_rasters += 1
                else:
                    self.tickets.append(Ticket(np.vstack(self._bands), self._ticket_bytes, cut))
            self._bands = []
            self._ticket_bytes = 0
            self._raster_bytes = 0
            self.changed.notify_all()

    def wait_tickets(self, count: int, timeout: float = 10.0) -> list[Ticket]:
        with self.changed:
            self.changed.wait_for(lambda: len(self.tickets) >= count, timeout)
            return list(self.tickets)


class TcpPrinterEmulator:
    """The emulator behind a TCP listener on 127.0.0.1 (one connection at a time, like many printers)."""

    def __init__(self) -> None:
        self.emulator = EscPosEmulator()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.last_byte_at: float = 0.0
        self.bytes_received = 0
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._serve, name="printer-emulator")
        self.accepting = True

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def start(self) -> TcpPrinterEmulator:
        self._thread.start()
        return self

    def stop(self) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join(5)
        self.listener.close()
        os.close(self._stop_r)
        os.close(self._stop_w)

    def _serve(self) -> None:
        import time

        conns: list[socket.socket] = []
        try:
            while True:
                ready, _, _ = select.select([self.listener, self._stop_r, *conns], [], [], 1.0)
                if self._stop_r in ready:
                    return
                for sock in ready:
                    if sock is self.listener:
                        conn, _ = self.listener.accept()
                        if not self.accepting:
                            conn.close()  # an unplugged printer: the connection is refused at once
                            continue
                        self.connections += 1
                        conns.append(conn)
                        continue
                    assert isinstance(sock, socket.socket)
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        data = b""
                    if data:
                        self.bytes_received += len(data)
                        self.last_byte_at = time.perf_counter()
                        reply, keep = self.emulator.feed(data)
                        if reply:
                            sock.sendall(reply)
                        if keep:
                            continue
                    conns.remove(sock)
                    sock.close()
        finally:
            for conn in conns:
                conn.close()


@contextmanager
def tcp_printer() -> Iterator[TcpPrinterEmulator]:
    server = TcpPrinterEmulator().start()
    try:
        yield server
    finally:
        server.stop()


class PtyPrinterEmulator:
    """The emulator on the master side of a pty: the kiosk opens the slave like /dev/usb/lp0 or a tty."""

    def __init__(self) -> None:
        self.emulator = EscPosEmulator()
        self.master, slave = os.openpty()
        self.path = os.ttyname(slave)
        import tty

        tty.setraw(slave)  # no echo, no line discipline: bytes pass as a printer cable would carry them
        os.close(slave)
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._serve, name="pty-printer-emulator")

    def start(self) -> PtyPrinterEmulator:
        self._thread.start()
        return self

    def stop(self) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join(5)
        os.close(self.master)
        os.close(self._stop_r)
        os.close(self._stop_w)

    def _serve(self) -> None:
        while True:
            ready, _, _ = select.select([self.master, self._stop_r], [], [], 1.0)
            if self._stop_r in ready:
                return
            if self.master in ready:
                try:
                    data = os.read(self.master, 65536)
                except OSError:  # no slave open right now (EIO)
                    select.select([self._stop_r], [], [], 0.05)
                    continue
                reply, _ = self.emulator.feed(data)
                if reply:
                    os.write(self.master, reply)
