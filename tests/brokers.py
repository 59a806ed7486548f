"""Real brokers and network faults for tests: mosquitto on a free 127.0.0.1 port, kill -9, restart,
and a TCP proxy that can stop forwarding without closing (a silently dead path).

Readiness is awaited by connecting to the port, never by sleeping a fixed time.
Also runnable as a kiosk agent process for crash tests: `python -m tests.brokers agent DATA_DIR URL`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

MOSQUITTO = "/usr/sbin/mosquitto"
ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "config" / "services.toml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Return once something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {proc.returncode}") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port}") from None
            time.sleep(0.005)  # between connection attempts only; readiness is the connect itself


@dataclass
class Broker:
    """A mosquitto process with a generated config; `config` is the body after the listener line."""

    workdir: Path
    port: int = field(default_factory=free_port)
    config: str = "allow_anonymous true\npersistence false\nset_tcp_nodelay true\nmax_queued_messages 100000\n"
    listener: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = self.workdir / "mosquitto.conf"
        listener = self.listener if self.listener is not None else f"listener {self.port} 127.0.0.1\n"
        path.write_text(listener + self.config, encoding="utf-8")
        return path

    def start(self, timeout: float = 10.0) -> Broker:
        conf = self.write_config()
        log = (self.workdir / "mosquitto.log").open("ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=log, stderr=log)
        log.close()
        self.starts += 1
        wait_port(self.port, timeout, self.proc)
        return self

    def kill(self) -> None:
        """kill -9: no goodbye to clients, nothing saved."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def log(self) -> str:
        path = self.workdir / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextlib.contextmanager
def running_broker(workdir: Path, **kwargs: object) -> Iterator[Broker]:
    broker = Broker(workdir, **kwargs)  # type: ignore[arg-type]
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Broker]:
    with running_broker(tmp_path / "broker") as broker:
        yield broker


@dataclass
class _Conn:
    writers: list[asyncio.StreamWriter]
    frozen: bool = False


class TcpProxy:
    """Forwards 127.0.0.1:port to a target; `freeze()` stops forwarding on the open connections in
    both directions without closing them (a dead NAT, a cut cable behind a switch). Connections
    made after `freeze()` are forwarded normally, so a client that reconnects recovers."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._conns: list[_Conn] = []

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def freeze(self) -> None:
        for conn in self._conns:
            conn.frozen = True

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        conn = _Conn([writer, up_writer])
        self._conns.append(conn)
        pipes = [asyncio.ensure_future(self._pipe(conn, reader, up_writer)),
                 asyncio.ensure_future(self._pipe(conn, up_reader, writer))]
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pipe in pipes:
                pipe.cancel()
            if not conn.frozen:
                for w in conn.writers:
                    w.close()

    @staticmethod
    async def _pipe(conn: _Conn, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        while True:
            data = await src.read(65536)
            if not data:
                return
            if conn.frozen:
                await asyncio.Event().wait()  # forward nothing more, never close
            dst.write(data)
            await dst.drain()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in self._conns:
            for w in conn.writers:
                w.close()


async def agent_process(data_dir: Path, url: str, keepalive: int) -> None:
    """A kiosk agent that only syncs (events come from other processes writing the same file)."""
    from dataclasses import replace

    from agent.core import Core
    from agent.settings import load_settings
    from agent.sync.runner import SyncHooks, mqtt_options, run_sync

    settings = load_settings(storage={"data_dir": data_dir, "busy_timeout_ms": 30_000},
                             queue={"enforce_hours": False, "catalogue": CATALOGUE},
                             device={"ward": "26734", "kiosk": "demo-01"},
                             mqtt={"url": url, "ack_timeout": 1.0, "reconnect_min": 0.05, "reconnect_max": 0.5,
                                   "publish_timeout": 5},
                             telemetry={"interval": 1})
    core = Core.open(settings)
    boot = int(core.db.meta_get("boot") or 0)
    options = replace(mqtt_options(settings, boot), keepalive=keepalive)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    try:
        await run_sync(core, stop, SyncHooks(), options=options)
    finally:
        core.close()


if __name__ == "__main__" and sys.argv[1:2] == ["agent"]:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(agent_process(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])))
