"""Which alerts a kiosk's status and telemetry raise: a pure function, so the rules are testable alone.

Kinds and severities (docs/integration.md, "Central fleet alerts"): `offline`, `camera_fault`,
`storage_error` are critical; the rest are warnings. Printer faults keep the kiosk's own name
(`printer_paper_end`, …) so alerts the kiosk learns to report later need no change here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

CRITICAL = "critical"
WARNING = "warning"


@dataclass(frozen=True)
class Thresholds:
    stale_after: float = 90.0
    backlog: int = 1000
    oldest_unsent: float = 600.0
    queue_factor: float = 3.0  # waiting list above factor × the kiosk's normal for that hour
    queue_floor: int = 10  # …and above this many people (a quiet hour's 1 → 4 is no anomaly)


def parse_at(at: Any) -> datetime | None:
    if not isinstance(at, str) or not at:
        return None
    try:
        parsed = datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def evaluate(status: dict[str, Any], telemetry: dict[str, Any], now: datetime, limits: Thresholds,
             normal_queue: float | None = None, online_since: datetime | None = None) -> dict[str, tuple[str, str]]:
    """kind → (severity, detail) of every alert the kiosk's state raises now.

    A kiosk that just came online has a moment to send its first telemetry (`online_since`).
    """
    out: dict[str, tuple[str, str]] = {}
    online = status.get("state") == "online"
    if not online:
        out["offline"] = (CRITICAL, "Ki-ốt mất kết nối")
    at = parse_at(telemetry.get("at"))
    age = None if at is None else (now - at).total_seconds()
    waited = None if online_since is None else (now - online_since).total_seconds()
    if online and (age > limits.stale_after if age is not None else (waited or 0) > limits.stale_after):
        out["telemetry_stale"] = (WARNING, "Không nhận số liệu" if age is None else f"Số liệu cũ {age:.0f} s")
    t = telemetry
    if isinstance(t.get("backlog"), int) and t["backlog"] > limits.backlog:
        out["backlog"] = (WARNING, f"{t['backlog']} sự kiện chưa gửi")
    oldest = t.get("oldest_unsent_age_s")
    if isinstance(oldest, int | float) and oldest > limits.oldest_unsent:
        out["oldest_unsent"] = (WARNING, f"Sự kiện chưa gửi lâu nhất {oldest:.0f} s")
    cam = t.get("camera")
    if isinstance(cam, dict) and cam.get("state") == "faulted":
        out["camera_fault"] = (CRITICAL, f"Camera lỗi ({cam.get('faults', 0)} lần)")
    if t.get("clock") == "unsynchronized":
        out["clock"] = (WARNING, "Đồng hồ chưa đồng bộ")
    if t.get("disk_low"):
        out["disk_low"] = (WARNING, f"Đĩa còn {t.get('disk_free_mb')} MB")
    outbox = t.get("outbox")
    if isinstance(outbox, dict) and outbox.get("storage_error"):
        out["storage_error"] = (CRITICAL, "Lỗi lưu trữ")
    if isinstance(outbox, dict) and outbox.get("ack_conflict"):
        out["ack_conflict"] = (WARNING, "Trung tâm giữ một nhật ký khác của ki-ốt")
    printer = t.get("printer")
    if isinstance(printer, dict):
        if printer.get("state") == "fault":
            out[f"printer_{printer.get('fault') or 'fault'}"] = (WARNING, "Máy in lỗi")
        elif printer.get("paper_near_end"):
            out["printer_paper_low"] = (WARNING, "Máy in sắp hết giấy")
    queue = t.get("queue_length")
    if isinstance(queue, int) and normal_queue is not None and queue >= limits.queue_floor \
            and queue > limits.queue_factor * max(normal_queue, 1.0):
        out["queue_anomaly"] = (WARNING, f"{queue} người chờ, thường {normal_queue:.0f} giờ này")
    return out
