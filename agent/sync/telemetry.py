"""Periodic health on `{root}/{ward}/{kiosk}/telemetry`, with a registry other parts add fields to.

A source is a callable returning a dict (camera fps and last frame age, announcer drops, …); its
fields appear under its name. A source that raises is reported as `{"error": …}` and logged,
never allowed to stop telemetry.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from agent import __version__
from agent.clock import Clock, rfc3339, system_clock
from agent.errors import KioskError
from agent.mqtt_client import MqttClient
from agent.settings import TelemetrySettings
from agent.sync.outbox import Outbox, wait_any
from agent.sync.topics import KioskTopics

logger = logging.getLogger(__name__)

TelemetrySource = Callable[[], dict[str, Any]]

_TIME_ERROR = 5  # adjtimex(2): the kernel clock is not synchronised


class TelemetryRegistry:
    def __init__(self) -> None:
        self._sources: dict[str, TelemetrySource] = {}

    def add(self, name: str, source: TelemetrySource) -> None:
        if name in self._sources:
            raise ValueError(f"telemetry source {name!r} registered twice")
        self._sources[name] = source

    def collect(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, source in self._sources.items():
            try:
                out[name] = source()
            except Exception as exc:  # one part's bug must not silence the whole report
                logger.exception("telemetry source %s failed", name)
                out[name] = {"error": f"{type(exc).__name__}: {exc}"}
        return out


def clock_state() -> str:
    """NTP discipline as the kernel sees it (adjtimex, read-only): cheap, no subprocess."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        buf = ctypes.create_string_buffer(512)  # struct timex is ~208 bytes; modes = 0 reads only
        rc = int(libc.adjtimex(buf))
    except (OSError, AttributeError):
        return "unknown"
    if rc < 0:
        return "unknown"
    return "unsynchronized" if rc == _TIME_ERROR else "synchronized"


class Telemetry:
    def __init__(self, client: MqttClient, topics: KioskTopics, outbox: Outbox, settings: TelemetrySettings,
                 registry: TelemetryRegistry, data_dir: Path, queue_length: Callable[[], int],
                 boot: int, clock: Clock = system_clock) -> None:
        self.client = client
        self.topics = topics
        self.outbox = outbox
        self.interval = settings.interval
        self.retain = settings.retain
        self.disk_low_mb = settings.disk_low_mb
        self.registry = registry
        self.data_dir = data_dir
        self.queue_length = queue_length
        self.boot = boot
        self.clock = clock
        self.started = time.monotonic()
        self.sent = 0
        self._changed = asyncio.Event()

    def set_interval(self, seconds: float) -> None:
        self.interval = seconds
        self._changed.set()

    def build(self) -> dict[str, Any]:
        proc = psutil.Process()
        body: dict[str, Any] = {
            "at": rfc3339(self.clock()), "version": __version__, "boot": self.boot,
            "uptime_s": round(time.monotonic() - self.started, 1),
            "cpu_percent": psutil.cpu_percent(interval=None),
            "memory_percent": psutil.virtual_memory().percent,
            "rss_mb": round(proc.memory_info().rss / 1e6, 1),
            "clock": clock_state(),
        }
        try:
            free_mb = psutil.disk_usage(str(self.data_dir)).free / 1e6
            body["disk_free_mb"] = round(free_mb, 1)
            body["disk_low"] = free_mb < self.disk_low_mb
        except OSError as exc:
            body["disk_free_mb"] = None
            body["disk_error"] = exc.strerror
        try:
            body["queue_length"] = self.queue_length()
        except KioskError as exc:  # the queue's storage may be failing: report it, keep reporting the rest
            body["queue_length"] = None
            body["queue_error"] = exc.message
        outbox = self.outbox.stats()
        body["outbox"] = outbox
        body["backlog"] = outbox.get("backlog")
        body["oldest_unsent_age_s"] = outbox.get("oldest_unsent_age_s")
        body["last_ack"] = {"seq": outbox.get("acked_seq"), "at": outbox.get("acked_at")}
        body["mqtt"] = {"connects": self.client.connects, "last_error": self.client.last_error or None}
        body.update(self.registry.collect())
        return body

    async def run(self, stop: asyncio.Event) -> None:
        psutil.cpu_percent(interval=None)  # the first call only starts the measurement
        # Right after each (re)connection, central gets fresh health instead of waiting an interval.
        connected = asyncio.Event()
        self.client.on_connect(connected.set)
        while not stop.is_set():
            self._changed.clear()
            await wait_any(stop.wait(), self._changed.wait(), connected.wait(), timeout=self.interval)
            now = connected.is_set()
            connected.clear()
            if stop.is_set() or (self._changed.is_set() and not now) or not self.client.is_connected:
                continue
            try:
                payload = json.dumps(self.build(), ensure_ascii=False, separators=(",", ":"))
            except Exception:  # a long-lived loop: log with traceback, try again next interval
                logger.exception("telemetry could not be built")
                continue
            fut = self.client.publish(self.topics.telemetry, payload, qos=0, retain=self.retain)
            fut.add_done_callback(lambda f: f.cancelled() or f.exception())
            self.sent += 1
