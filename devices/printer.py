"""Thermal receipt printers: network (TCP 9100), USB printer class, serial, and a folder for the demo.

`open_printer(spec)` parses `printer.device` (`tcp://HOST:PORT`, `usb:/dev/usb/lp0`, `usb:VID:PID`,
`serial:/dev/ttyUSB0?baud=N`, `file:DIR`). Every method blocks (sockets, device files): the agent
calls them in a worker thread. A failure is a `PrinterError` whose `reason` is what
`printer.fault` events carry (offline, disconnected, no_response, garbage, paper_end, …).
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

from devices.escpos import STATUS_QUERY, PrinterStatus, StatusGarbage, parse_status

CONNECT_TIMEOUT_S = 3.0
IO_TIMEOUT_S = 5.0
STATUS_TIMEOUT_S = 1.0
SYSFS_USBMISC = Path("/sys/class/usbmisc")
BAUDS = {9600: termios.B9600, 19200: termios.B19200, 38400: termios.B38400, 57600: termios.B57600,
         115200: termios.B115200}


class PrinterError(Exception):
    """Printing or asking for status failed; `reason` is the machine word for the fault."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class PrintJob:
    """One ticket ready for the printer: the ESC/POS bytes, and its picture for backends that keep it."""

    name: str
    data: bytes
    png: Callable[[], bytes]


class Printer(Protocol):
    description: str

    def print(self, job: PrintJob) -> None: ...

    def status(self) -> PrinterStatus | None:
        """The real-time status, or None when the backend cannot tell (a write-only device)."""
        ...

    def close(self) -> None: ...


class _Channel(Protocol):
    def write(self, data: bytes, timeout: float) -> None: ...
    def read(self, size: int, timeout: float) -> bytes: ...
    def close(self) -> None: ...


class _SocketChannel:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def write(self, data: bytes, timeout: float) -> None:
        self.sock.settimeout(timeout)
        self.sock.sendall(data)

    def read(self, size: int, timeout: float) -> bytes:
        out = bytearray()
        deadline = time.monotonic() + timeout
        while len(out) < size:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(size - len(out))
            except TimeoutError:
                break
            if not chunk:
                raise ConnectionResetError("the printer closed the connection")
            out += chunk
        return bytes(out)

    def close(self) -> None:
        self.sock.close()


class _FdChannel:
    """A device file (USB printer class /dev/usb/lp*, a serial tty, a pty in tests)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write(self, data: bytes, timeout: float) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + timeout
        while view:
            left = deadline - time.monotonic()
            _, ready, _ = select.select([], [self.fd], [], max(0.0, left))
            if not ready:
                raise TimeoutError(f"the device took no data for {timeout:g} s")
            try:
                written = os.write(self.fd, view[:4096])
            except BlockingIOError:
                continue
            view = view[written:]

    def read(self, size: int, timeout: float) -> bytes:
        out = bytearray()
        deadline = time.monotonic() + timeout
        while len(out) < size:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                break
            try:
                chunk = os.read(self.fd, size - len(out))
            except BlockingIOError:
                continue
            if not chunk:
                break
            out += chunk
        return bytes(out)

    def close(self) -> None:
        os.close(self.fd)


class StreamPrinter:
    """A bidirectional printer behind a channel, opened on first use and reopened after an error."""

    def __init__(self, description: str, opener: Callable[[], _Channel], status_timeout: float = STATUS_TIMEOUT_S,
                 io_timeout: float = IO_TIMEOUT_S) -> None:
        self.description = description
        self._opener = opener
        self._channel: _Channel | None = None
        self.status_timeout = status_timeout
        self.io_timeout = io_timeout

    def _open(self) -> _Channel:
        if self._channel is None:
            try:
                self._channel = self._opener()
            except OSError as exc:
                raise PrinterError("offline", f"cannot open {self.description}: {exc.strerror or exc}") from exc
        return self._channel

    def _fail(self, reason: str, detail: str, exc: BaseException | None = None) -> PrinterError:
        self.close()  # the next attempt starts from a fresh connection
        error = PrinterError(reason, detail)
        if exc is not None:
            error.__cause__ = exc
        return error

    def print(self, job: PrintJob) -> None:
        channel = self._open()
        try:
            channel.write(job.data, self.io_timeout)
        except TimeoutError as exc:
            raise self._fail("no_response", f"{self.description} took no data for {self.io_timeout:g} s", exc) from exc
        except OSError as exc:
            raise self._fail("disconnected", f"{self.description}: {exc.strerror or exc}", exc) from exc

    def status(self) -> PrinterStatus:
        channel = self._open()
        try:
            self._drain(channel)
            channel.write(STATUS_QUERY, self.io_timeout)
            reply = channel.read(len(STATUS_QUERY) // 3, self.status_timeout)
        except TimeoutError as exc:
            raise self._fail("no_response", f"{self.description} took no status request", exc) from exc
        except OSError as exc:
            raise self._fail("disconnected", f"{self.description}: {exc.strerror or exc}", exc) from exc
        if not reply:
            raise self._fail("no_response", f"{self.description} did not answer DLE EOT within "
                                            f"{self.status_timeout:g} s")
        try:
            return parse_status(reply)
        except StatusGarbage as exc:
            raise self._fail("garbage", f"{self.description}: {exc}", exc) from exc

    @staticmethod
    def _drain(channel: _Channel) -> None:
        """Drop stray bytes (a late answer, line noise) so they are not read as this status."""
        for _ in range(64):
            if not channel.read(256, 0.0):
                return

    def close(self) -> None:
        if self._channel is not None:
            channel, self._channel = self._channel, None
            with contextlib.suppress(OSError):
                channel.close()


class FolderPrinter:
    """`file:DIR`: each ticket as NAME.png (to look at) and NAME.escpos (the exact bytes); always ready."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.description = f"folder {folder}"

    def print(self, job: PrintJob) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / f"{job.name}.escpos").write_bytes(job.data)
            (self.folder / f"{job.name}.png").write_bytes(job.png())
        except OSError as exc:
            raise PrinterError("offline", f"cannot write to {self.folder}: {exc.strerror or exc}") from exc

    def status(self) -> PrinterStatus | None:
        return PrinterStatus() if os.access(self.folder if self.folder.exists() else self.folder.parent,
                                            os.W_OK) else PrinterStatus(faults=("offline",))

    def close(self) -> None:
        pass


def _tcp(host: str, port: int, timeout: float) -> Callable[[], _Channel]:
    def opener() -> _Channel:
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _SocketChannel(sock)

    return opener


def _device(path: str, baud: int | None) -> Callable[[], _Channel]:
    def opener() -> _Channel:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        if baud is not None:
            try:
                _raw_serial(fd, BAUDS[baud])
            except termios.error as exc:
                os.close(fd)
                raise OSError(f"{path} is not a serial port ({exc})") from exc
        return _FdChannel(fd)

    return opener


def _raw_serial(fd: int, speed: int) -> None:
    """8N1, raw, no echo, no flow control: ESC/POS bytes must pass untouched."""
    attrs = termios.tcgetattr(fd)
    attrs[0] = 0  # iflag
    attrs[1] = 0  # oflag
    attrs[2] = termios.CS8 | termios.CREAD | termios.CLOCAL
    attrs[3] = 0  # lflag
    attrs[4] = attrs[5] = speed
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


def usb_device_for(vendor: int, product: int, sysfs: Path = SYSFS_USBMISC) -> str:
    """The /dev/usb/lpN the kernel's usblp driver made for a USB printer with this vendor:product id."""
    for entry in sorted(sysfs.glob("lp*")) if sysfs.is_dir() else []:
        interface = (entry / "device").resolve()
        for parent in (interface, *interface.parents):
            vid, pid = parent / "idVendor", parent / "idProduct"
            if vid.is_file() and pid.is_file():
                if int(vid.read_text().strip(), 16) == vendor and int(pid.read_text().strip(), 16) == product:
                    return f"/dev/usb/{entry.name}"
                break
    raise PrinterError("offline", f"no USB printer {vendor:04x}:{product:04x} is attached (usblp)")


def parse_device(spec: str) -> tuple[str, str, int | None]:
    """Validate a `printer.device` spec → (kind, target, number); raises ValueError with the reason."""
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise ValueError("expected tcp://HOST:PORT, usb:/dev/usb/lp0, usb:VID:PID, serial:/dev/ttyUSB0?baud=N "
                         "or file:DIR")
    if kind == "tcp":
        url = urlsplit(spec)
        if not url.hostname or url.path not in ("", "/") or url.query:
            raise ValueError("tcp printer must be tcp://HOST:PORT")
        try:
            port = url.port or 9100
        except ValueError as exc:
            raise ValueError(f"bad port in {spec!r}") from exc
        return "tcp", url.hostname, port
    if kind == "usb":
        if rest.startswith("/"):
            return "usb", rest, None
        vid, _, pid = rest.partition(":")
        if not (len(vid) == 4 == len(pid) and all(c in "0123456789abcdefABCDEF" for c in vid + pid)):
            raise ValueError("usb printer must be usb:/dev/usb/lpN or usb:VID:PID (4 hex digits each)")
        return "usb-id", rest, None
    if kind == "serial":
        path, _, query = rest.partition("?")
        if not path.startswith("/"):
            raise ValueError("serial printer must be serial:/dev/ttyXXX?baud=N")
        baud_text = parse_qs(query).get("baud", ["9600"])[-1]
        if not baud_text.isdigit() or int(baud_text) not in BAUDS:
            raise ValueError(f"baud must be one of {sorted(BAUDS)}")
        return "serial", path, int(baud_text)
    if kind == "file":
        return "file", rest, None
    raise ValueError(f"unknown printer kind {kind!r}")


def open_printer(spec: str, base: Path | None = None, *, status_timeout: float = STATUS_TIMEOUT_S,
                 io_timeout: float = IO_TIMEOUT_S) -> Printer:
    """The printer a spec names; nothing is opened until the first print or status request."""
    try:
        kind, target, number = parse_device(spec)
    except ValueError as exc:
        raise PrinterError("bad_device", str(exc)) from exc
    timeouts = {"status_timeout": status_timeout, "io_timeout": io_timeout}
    if kind == "tcp":
        assert number is not None
        return StreamPrinter(f"printer tcp://{target}:{number}", _tcp(target, number, CONNECT_TIMEOUT_S), **timeouts)
    if kind == "usb":
        return StreamPrinter(f"printer {target}", _device(target, None), **timeouts)
    if kind == "usb-id":
        vendor, product = (int(part, 16) for part in target.split(":"))

        def usb_opener() -> _Channel:
            try:
                return _device(usb_device_for(vendor, product), None)()
            except PrinterError as exc:
                raise OSError(exc.detail) from exc

        return StreamPrinter(f"USB printer {vendor:04x}:{product:04x}", usb_opener, **timeouts)
    if kind == "serial":
        return StreamPrinter(f"printer {target}", _device(target, number), **timeouts)
    folder = Path(target)
    if not folder.is_absolute() and base is not None:
        folder = base / folder
    return FolderPrinter(folder)
