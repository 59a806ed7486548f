"""The fleet monitor: every kiosk's state from its retained `status` and its last `telemetry`, with alerts.

Alerts: `offline`, `telemetry_stale` (none for `stale_after` s), `backlog` / `oldest_unsent` above
thresholds, `clock_unsynchronized`, `disk_low`, `storage_error`, `printer_<fault>` (`printer_paper_end`,
`printer_offline`, …), `printer_paper_low`, and `ack_conflict` (central's ack names another event log or
another event at its seq: a replaced or restored kiosk database; the kiosk keeps its events).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent.clock import Clock, parse_rfc3339, system_clock
from agent.mqtt_client import Message, MqttClient
from agent.sync.topics import parse_kiosk_topic

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Thresholds:
    stale_after: float = 90.0
    backlog: int = 1000
    oldest_unsent: float = 600.0


@dataclass
class KioskView:
    ward: str
    kiosk: str
    status: dict[str, Any] = field(default_factory=dict)
    telemetry: dict[str, Any] = field(default_factory=dict)

    def alerts(self, now: datetime, limits: Thresholds) -> list[str]:
        out: list[str] = []
        if self.status.get("state") != "online":
            out.append("offline")
        at = self.telemetry.get("at")
        age = _age(now, at)
        if self.status.get("state") == "online" and (age is None or age > limits.stale_after):
            out.append("telemetry_stale")
        t = self.telemetry
        if isinstance(t.get("backlog"), int) and t["backlog"] > limits.backlog:
            out.append("backlog")
        oldest = t.get("oldest_unsent_age_s")
        if isinstance(oldest, int | float) and oldest > limits.oldest_unsent:
            out.append("oldest_unsent")
        if t.get("clock") == "unsynchronized":
            out.append("clock_unsynchronized")
        if t.get("disk_low"):
            out.append("disk_low")
        if isinstance(t.get("outbox"), dict) and t["outbox"].get("storage_error"):
            out.append("storage_error")
        if isinstance(t.get("outbox"), dict) and t["outbox"].get("ack_conflict"):
            out.append("ack_conflict")  # central holds another version of this kiosk's log
        printer = t.get("printer")  # telemetry of agent.printing: residents get no paper ticket
        if isinstance(printer, dict):
            if printer.get("state") == "fault":
                out.append(f"printer_{printer.get('fault') or 'fault'}")
            elif printer.get("paper_near_end"):
                out.append("printer_paper_low")
        return out

    def row(self, now: datetime, limits: Thresholds) -> dict[str, Any]:
        t = self.telemetry
        return {"ward": self.ward, "kiosk": self.kiosk, "state": self.status.get("state", "unknown"),
                "version": self.status.get("version"), "boot": self.status.get("boot"),
                "telemetry_age_s": _age(now, t.get("at")), "backlog": t.get("backlog"),
                "oldest_unsent_age_s": t.get("oldest_unsent_age_s"), "queue_length": t.get("queue_length"),
                "disk_free_mb": t.get("disk_free_mb"), "clock": t.get("clock"),
                "alerts": self.alerts(now, limits)}


def _age(now: datetime, at: Any) -> float | None:
    if not isinstance(at, str) or not at:
        return None
    try:
        return round((now - parse_rfc3339(at)).total_seconds(), 1)
    except ValueError:
        return None


class Fleet:
    def __init__(self, client: MqttClient, root: str = "wards", limits: Thresholds = Thresholds(),
                 clock: Clock = system_clock) -> None:
        self.client = client
        self.root = root
        self.limits = limits
        self.clock = clock
        self.kiosks: dict[tuple[str, str], KioskView] = {}
        self.changed = asyncio.Event()

    def attach(self) -> None:
        self.client.subscribe(f"{self.root}/+/+/status", self.on_message, qos=1)
        self.client.subscribe(f"{self.root}/+/+/telemetry", self.on_message, qos=0)

    def on_message(self, message: Message) -> None:
        where = parse_kiosk_topic(message.topic)
        if where is None:
            return
        _, ward, kiosk, leaf = where
        try:
            body = json.loads(message.payload) if message.payload else {}
        except ValueError:
            logger.warning("ignored malformed %s", message.topic)
            return
        if not isinstance(body, dict):
            return
        view = self.kiosks.setdefault((ward, kiosk), KioskView(ward, kiosk))
        if leaf == "status":
            view.status = body
        elif leaf == "telemetry":
            view.telemetry = body
        self.changed.set()

    def rows(self) -> list[dict[str, Any]]:
        now = self.clock()
        return [view.row(now, self.limits) for _, view in sorted(self.kiosks.items())]


def render_table(rows: list[dict[str, Any]]) -> str:
    head = f"{'WARD':<6} {'KIOSK':<20} {'STATE':<8} {'TELE(s)':>8} {'BACKLOG':>8} {'OLDEST(s)':>9} ALERTS"
    lines = [head]
    for r in rows:
        age = "-" if r["telemetry_age_s"] is None else f"{r['telemetry_age_s']:.0f}"
        oldest = "-" if r["oldest_unsent_age_s"] is None else f"{r['oldest_unsent_age_s']:.0f}"
        backlog = "-" if r["backlog"] is None else str(r["backlog"])
        lines.append(f"{r['ward']:<6} {r['kiosk']:<20} {r['state']:<8} {age:>8} {backlog:>8} {oldest:>9} "
                     f"{','.join(r['alerts']) or 'ok'}")
    if not rows:
        lines.append("(no kiosk has reported)")
    return "\n".join(lines)
