"""`GET /metrics` in the Prometheus text exposition format 0.0.4, written by hand (no client library:
a few dozen series from snapshots we already build; the format is a few lines of escaping).

The device and sync series are not counted here: they are read from the same snapshot the MQTT
telemetry message is built from (``snapshot()``: the telemetry registry's sources plus the outbox and
MQTT figures, see ``agent.app.metrics_snapshot``), so a scrape and a telemetry message can never
disagree about a number. Naming follows Prometheus conventions: ``kiosk_`` prefix, ``_total`` on
counters, base units (``_seconds``), and every series carries the ``ward`` and ``kiosk`` labels so a
central Prometheus can scrape a whole fleet without relabelling.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

Labels = Mapping[str, str]
Snapshot = dict[str, Any]

# Every state a call can be in (agent.calls.service.CallStateName) plus "idle" before the first call;
# all are exported, 0 or 1, so an alert can say `kiosk_call_state{state="ringing"} == 1 for 2m`.
CALL_STATES = ("idle", "ringing", "connecting", "connected", "ended", "missed")


class AnnouncerStats(Protocol):
    played: int
    skipped_quiet: int
    dropped: int
    failed: int

    @property
    def pending(self) -> int: ...


@dataclass
class Family:
    """One metric family: its samples are (name suffix, labels, value)."""

    name: str
    type: str
    help: str
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)

    def add(self, value: float | None, suffix: str = "", **labels: str) -> Family:
        if value is not None:
            self.samples.append((suffix, labels, float(value)))
        return self


def gauge(name: str, help_: str, value: float | None = None, **labels: str) -> Family:
    return Family(name, "gauge", help_).add(value, **labels)


def counter(name: str, help_: str, value: float | None = None, **labels: str) -> Family:
    assert name.endswith("_total"), name
    return Family(name, "counter", help_).add(value, **labels)


def histogram(name: str, help_: str, snap: Mapping[str, Any]) -> Family:
    """From a ``DurationHistogram.snapshot()``: cumulative buckets keyed by their ``le`` bound."""
    fam = Family(name, "histogram", help_)
    for bound, n in snap["buckets"].items():
        fam.add(n, "_bucket", le=bound)
    fam.add(snap["sum"], "_sum")
    fam.add(snap["count"], "_count")
    return fam


def _escape(value: str) -> str:
    """A label value: backslash, newline and double quote are escaped."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    """HELP text: only backslash and newline are escaped (a quote stays a quote)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def render(families: Iterable[Family], const_labels: Labels) -> str:
    lines: list[str] = []
    for fam in families:
        if not fam.samples:
            continue
        lines += [f"# HELP {fam.name} {_escape_help(fam.help)}", f"# TYPE {fam.name} {fam.type}"]
        for suffix, labels, value in fam.samples:
            pairs = ",".join(f'{k}="{_escape(v)}"' for k, v in {**const_labels, **labels}.items())
            lines.append(f"{fam.name}{suffix}{{{pairs}}} {_number(value)}" if pairs
                         else f"{fam.name}{suffix} {_number(value)}")
    return "\n".join(lines) + "\n"


# --- telemetry snapshot → families -----------------------------------------------------------------


def _section(snap: Snapshot, name: str) -> Mapping[str, Any] | None:
    """A telemetry section, or None when absent or when its source failed (``{"error": …}``)."""
    section = snap.get(name)
    if not isinstance(section, Mapping) or "error" in section:
        return None
    return section


def camera_families(cam: Mapping[str, Any]) -> list[Family]:
    drops = Family("kiosk_camera_dropped_frames_total", "counter",
                   "Frames a consumer skipped because it was busy, by consumer (scanner, call).")
    for consumer, n in sorted((cam.get("drops") or {}).items()):
        drops.add(n, consumer=consumer)
    return [
        gauge("kiosk_camera_up", "1 while the camera delivers frames, 0 when starting, faulted or stopped.",
              1 if cam.get("state") == "running" else 0),
        gauge("kiosk_camera_fps", "Frames per second read from the camera (recent window).", cam.get("fps")),
        gauge("kiosk_camera_last_frame_age_seconds", "Age of the newest frame.", cam.get("last_frame_age_s")),
        counter("kiosk_camera_frames_total", "Frames read from the camera.", cam.get("frames_read")),
        drops,
        counter("kiosk_camera_faults_total", "Times the camera failed and was reopened with backoff.",
                cam.get("faults")),
    ]


def scanner_families(scan: Mapping[str, Any]) -> list[Family]:
    out = [
        counter("kiosk_scanner_frames_total", "Frames the QR scanner decoded.", scan.get("frames_decoded")),
        counter("kiosk_scanner_codes_total", "QR codes read (a code held in view counts every frame).",
                scan.get("codes_seen")),
        counter("kiosk_scanner_scans_total", "Codes handed to check-in after debouncing.", scan.get("scans")),
        counter("kiosk_scanner_debounced_total", "Codes ignored as still in view.", scan.get("debounced")),
    ]
    decisions = Family("kiosk_checkin_decisions_total", "counter",
                       "Check-in decisions on scanned codes, by payload kind and result (accepted, rejected).")
    for key, n in sorted((scan.get("decisions") or {}).items()):
        kind, _, result = key.partition(":")
        decisions.add(n, kind=kind, result=result)
    out.append(decisions)
    if isinstance(scan.get("decode_seconds"), Mapping):
        out.append(histogram("kiosk_qr_decode_seconds", "Time to decode one camera frame (all passes).",
                             scan["decode_seconds"]))
    return out


def announcer_families(ann: Mapping[str, Any]) -> list[Family]:
    return [
        counter("kiosk_announcer_played_total", "Call-outs played.", ann.get("played")),
        counter("kiosk_announcer_skipped_quiet_total", "Call-outs not spoken in quiet hours.",
                ann.get("skipped_quiet")),
        counter("kiosk_announcer_dropped_total", "Call-outs dropped because the queue was full.", ann.get("dropped")),
        counter("kiosk_announcer_failed_total", "Call-outs that failed (speaker, speech).", ann.get("failed")),
        gauge("kiosk_announcer_queue_length", "Call-outs waiting to be played.", ann.get("queue_length")),
        gauge("kiosk_announcer_volume", "Loudness of the call-outs, 0..1.", ann.get("volume")),
    ]


def call_families(call: Mapping[str, Any]) -> list[Family]:
    fam = Family("kiosk_call_state", "gauge", "1 for the state of the current (or last) video call.")
    for state in CALL_STATES:
        fam.add(1 if call.get("state") == state else 0, state=state)
    return [fam]


def sync_families(outbox: Mapping[str, Any] | None, mqtt: Mapping[str, Any] | None) -> list[Family]:
    out: list[Family] = []
    if outbox is not None:
        out += [
            gauge("kiosk_outbox_backlog_events", "Events in the log not yet published to the broker.",
                  outbox.get("backlog")),
            gauge("kiosk_outbox_unacked_events", "Events central has not acknowledged yet.", outbox.get("unacked")),
            gauge("kiosk_outbox_oldest_unsent_age_seconds", "Age of the oldest event not yet published (0: none).",
                  outbox.get("oldest_unsent_age_s") or 0),
            gauge("kiosk_outbox_sent_seq", "Highest seq published and confirmed by the broker.",
                  outbox.get("sent_seq")),
            gauge("kiosk_outbox_acked_seq", "Highest seq central acknowledged.", outbox.get("acked_seq")),
            counter("kiosk_outbox_resends_total", "Times the outbox re-sent from central's ack.",
                    outbox.get("resends")),
            counter("kiosk_outbox_storage_errors_total", "Storage errors met by the outbox.",
                    outbox.get("storage_errors")),
        ]
    if mqtt is not None:
        connects = int(mqtt.get("connects") or 0)
        out += [
            gauge("kiosk_mqtt_connected", "1 while the MQTT connection is up.", 1 if mqtt.get("connected") else 0),
            counter("kiosk_mqtt_connects_total", "Successful MQTT connections since start.", connects),
            counter("kiosk_mqtt_reconnects_total", "MQTT connections after the first one.", max(0, connects - 1)),
        ]
    return out


def printer_families(pr: Mapping[str, Any]) -> list[Family]:
    fault = Family("kiosk_printer_fault", "gauge", "The printer's current fault, by reason (1 while it lasts).")
    if pr.get("fault"):
        fault.add(1, reason=str(pr["fault"]))
    return [
        gauge("kiosk_printer_up", "1 when the ticket printer can print, 0 in a fault.", 0 if pr.get("fault") else 1),
        fault,
        gauge("kiosk_printer_paper_near_end", "1 when the paper roll is nearly used up.",
              int(bool(pr.get("paper_near_end")))),
        gauge("kiosk_printer_pending", "Tickets waiting to be printed.", pr.get("pending")),
        counter("kiosk_printer_printed_total", "Tickets printed since the agent started.", pr.get("printed")),
    ]


def families_from_snapshot(snap: Snapshot) -> list[Family]:
    out: list[Family] = []
    converters: list[tuple[str, Callable[[Mapping[str, Any]], list[Family]]]] = [
        ("camera", camera_families), ("scanner", scanner_families), ("announcer", announcer_families),
        ("call", call_families), ("printer", printer_families),
    ]
    for name, convert in converters:
        section = _section(snap, name)
        if section is not None:
            out += convert(section)
    out += sync_families(_section(snap, "outbox"), _section(snap, "mqtt"))
    failed = [name for name, section in snap.items() if isinstance(section, Mapping) and "error" in section]
    errors = Family("kiosk_metrics_source_up", "gauge", "0 when a telemetry source raised on this scrape.")
    for name in sorted(snap):
        if isinstance(snap[name], Mapping):
            errors.add(0 if name in failed else 1, source=name)
    out.append(errors)
    return out


# --- the web server's own series and the whole page ------------------------------------------------


def _loop_tasks() -> float | None:
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:  # rendered outside a running loop (a unit test): no sample
        return None


class WebMetrics:
    """Counts HTTP requests and renders the page; ``snapshot`` supplies the device and sync sections."""

    def __init__(self, labels: Labels | None = None, snapshot: Callable[[], Snapshot] | None = None) -> None:
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.labels: dict[str, str] = dict(labels or {})
        self.snapshot = snapshot

    def count(self, method: str, route: str, status: int) -> None:
        self.requests[(method, route, status)] += 1

    def render(self, *, last_seq: int, waiting: dict[str, int], live_clients: int, live_messages: int,
               auth_failures: int, announcer: AnnouncerStats | None) -> str:
        requests = Family("kiosk_http_requests_total", "counter", "HTTP requests served, by route pattern and status.")
        for (method, route, status), n in sorted(self.requests.items()):
            requests.add(n, method=method, route=route, status=str(status))
        tickets = Family("kiosk_tickets_waiting", "gauge", "Tickets waiting, per service.")
        for code, n in sorted(waiting.items()):
            tickets.add(n, service=code)
        families = [
            requests,
            gauge("kiosk_event_last_seq", "Highest seq in the local event log.", last_seq),
            tickets,
            gauge("kiosk_live_clients", "Screens connected to the live stream.", live_clients),
            counter("kiosk_live_messages_total", "Messages sent on live streams.", live_messages),
            counter("kiosk_counter_auth_failures_total", "Wrong counter PINs presented.", auth_failures),
        ]
        tasks = _loop_tasks()
        if tasks is not None:  # a count that grows over a day is a task leak (bench/soak.py)
            families.append(gauge("kiosk_asyncio_tasks", "asyncio tasks alive in the daemon's event loop.", tasks))
        snap = self.snapshot() if self.snapshot is not None else {}
        if "announcer" not in snap and announcer is not None:
            # Without the daemon's snapshot (a bare web server in tests), read the announcer directly.
            snap["announcer"] = {"played": announcer.played, "skipped_quiet": announcer.skipped_quiet,
                                 "dropped": announcer.dropped, "failed": announcer.failed,
                                 "queue_length": announcer.pending}
        families += families_from_snapshot(snap)
        return render(families, self.labels)
