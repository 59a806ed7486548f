"""The fleet's tables: wards' names, each kiosk's latest status/telemetry, a bounded telemetry series,
alerts with raised/cleared/acknowledged times, and every remote command with its reply.

Created with IF NOT EXISTS beside central web's versioned schema; all calls are blocking (run them in
a worker thread from the web).
"""

from __future__ import annotations

import csv
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from central.db import Cursor, Db
from central.errors import BadInput
from central.fleet.alerts import Thresholds, evaluate, parse_at

SERIES_KEEP = 2880  # telemetry points kept per kiosk (a day at 30 s)

DDL = [
    "CREATE TABLE IF NOT EXISTS central_wards (code TEXT PRIMARY KEY, name TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS central_kiosks (ward TEXT NOT NULL, kiosk TEXT NOT NULL, status TEXT NOT NULL, "
    "telemetry TEXT NOT NULL, state TEXT NOT NULL, state_since TEXT NOT NULL, updated_at TEXT NOT NULL, "
    "PRIMARY KEY (ward, kiosk))",
    "CREATE TABLE IF NOT EXISTS central_telemetry (ward TEXT NOT NULL, kiosk TEXT NOT NULL, n BIGINT NOT NULL, "
    "at TEXT NOT NULL, hour INTEGER NOT NULL, queue_length INTEGER, data TEXT NOT NULL, PRIMARY KEY (ward, kiosk, n))",
    "CREATE TABLE IF NOT EXISTS central_alerts (id TEXT PRIMARY KEY, ward TEXT NOT NULL, kiosk TEXT NOT NULL, "
    "kind TEXT NOT NULL, severity TEXT NOT NULL, detail TEXT NOT NULL, raised_at TEXT NOT NULL, cleared_at TEXT, "
    "ack_by TEXT, ack_at TEXT, ack_note TEXT)",
    "CREATE INDEX IF NOT EXISTS central_alerts_open ON central_alerts (ward, kiosk, cleared_at)",
    "CREATE TABLE IF NOT EXISTS central_commands (id TEXT PRIMARY KEY, ward TEXT NOT NULL, kiosk TEXT NOT NULL, "
    "who TEXT NOT NULL, at TEXT NOT NULL, name TEXT NOT NULL, args TEXT NOT NULL, reply TEXT, replied_at TEXT)",
]


def iso(now: datetime) -> str:
    return now.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def ensure_fleet_schema(db: Db) -> None:
    with db.transaction() as cur:
        for statement in DDL:
            cur.run(statement)


@dataclass(frozen=True)
class Alert:
    id: str
    ward: str
    kiosk: str
    kind: str
    severity: str
    detail: str
    raised_at: str
    cleared_at: str | None
    ack_by: str | None
    ack_at: str | None
    ack_note: str | None


ALERT_COLS = "id, ward, kiosk, kind, severity, detail, raised_at, cleared_at, ack_by, ack_at, ack_note"


class FleetStore:
    def __init__(self, db: Db, limits: Thresholds = Thresholds()) -> None:
        self.db = db
        self.limits = limits

    # wards -----------------------------------------------------------------------------------------
    def set_ward(self, code: str, name: str) -> None:
        if not code.strip() or not name.strip():
            raise BadInput("Mã và tên phường/xã không được trống.")
        with self.db.transaction() as cur:
            cur.run("DELETE FROM central_wards WHERE code = ?", (code.strip(),))
            cur.run("INSERT INTO central_wards (code, name) VALUES (?, ?)", (code.strip(), name.strip()))

    def import_wards(self, path: Path) -> int:
        """A CSV of `code,name` rows (a header row `code,name` is skipped); all or nothing."""
        try:
            with path.open(encoding="utf-8-sig", newline="") as f:
                rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInput(f"Không đọc được tệp {path}: {exc}") from exc
        if rows and [c.strip().lower() for c in rows[0][:2]] == ["code", "name"]:
            rows = rows[1:]
        for n, r in enumerate(rows, 1):
            if len(r) < 2 or not r[0].strip() or not r[1].strip():
                raise BadInput(f"Dòng {n}: cần mã và tên phường/xã.")
        with self.db.transaction() as cur:
            for r in rows:
                cur.run("DELETE FROM central_wards WHERE code = ?", (r[0].strip(),))
                cur.run("INSERT INTO central_wards (code, name) VALUES (?, ?)", (r[0].strip(), r[1].strip()))
        return len(rows)

    def wards(self) -> dict[str, str]:
        return {str(c): str(n) for c, n in self.db.query("SELECT code, name FROM central_wards ORDER BY code")}

    # status and telemetry --------------------------------------------------------------------------
    def record(self, ward: str, kiosk: str, leaf: str, body: dict[str, Any], now: datetime) -> None:
        """Store a status or telemetry message and raise/clear the kiosk's alerts in one transaction."""
        with self.db.transaction() as cur:
            row = cur.first("SELECT status, telemetry, state, state_since FROM central_kiosks "
                            "WHERE ward = ? AND kiosk = ?", (ward, kiosk))
            status: dict[str, Any] = json.loads(row[0]) if row else {}
            telemetry: dict[str, Any] = json.loads(row[1]) if row else {}
            if leaf == "status":
                status = body
            else:
                telemetry = body
                self._append_series(cur, ward, kiosk, body, now)
            state = str(status.get("state", "unknown"))
            since = str(row[3]) if row and row[2] == state else iso(now)
            cur.run("DELETE FROM central_kiosks WHERE ward = ? AND kiosk = ?", (ward, kiosk))
            cur.run("INSERT INTO central_kiosks (ward, kiosk, status, telemetry, state, state_since, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", (ward, kiosk, json.dumps(status), json.dumps(telemetry),
                                                     state, since, iso(now)))
            self._reconcile(cur, ward, kiosk, status, telemetry, now, parse_at(since))

    def _append_series(self, cur: Cursor, ward: str, kiosk: str, body: dict[str, Any], now: datetime) -> None:
        last = cur.first("SELECT MAX(n) FROM central_telemetry WHERE ward = ? AND kiosk = ?", (ward, kiosk))
        n = int(last[0]) + 1 if last and last[0] is not None else 1
        at = parse_at(body.get("at")) or now
        queue = body.get("queue_length") if isinstance(body.get("queue_length"), int) else None
        cur.run("INSERT INTO central_telemetry (ward, kiosk, n, at, hour, queue_length, data) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)", (ward, kiosk, n, iso(at), at.astimezone(UTC).hour, queue,
                                                 json.dumps(body)))
        cur.run("DELETE FROM central_telemetry WHERE ward = ? AND kiosk = ? AND n <= ?",
                (ward, kiosk, n - SERIES_KEEP))

    def _normal_queue(self, cur: Cursor, ward: str, kiosk: str, hour: int) -> float | None:
        # The kiosk's usual waiting list at this hour, from its own series (earlier points only matter
        # once there are enough of them to call anything "normal").
        row = cur.first("SELECT AVG(queue_length), COUNT(queue_length) FROM central_telemetry "
                        "WHERE ward = ? AND kiosk = ? AND hour = ?", (ward, kiosk, hour))
        if row is None or row[0] is None or int(row[1]) < 5:
            return None
        return float(row[0])

    def _reconcile(self, cur: Cursor, ward: str, kiosk: str, status: dict[str, Any], telemetry: dict[str, Any],
                   now: datetime, since: datetime | None) -> None:
        normal = self._normal_queue(cur, ward, kiosk, now.astimezone(UTC).hour)
        wanted = evaluate(status, telemetry, now, self.limits, normal, since)
        open_rows = cur.all("SELECT id, kind FROM central_alerts WHERE ward = ? AND kiosk = ? AND cleared_at IS NULL",
                            (ward, kiosk))
        open_kinds = {str(k): str(i) for i, k in open_rows}
        for kind, alert_id in open_kinds.items():
            if kind not in wanted:
                cur.run("UPDATE central_alerts SET cleared_at = ? WHERE id = ?", (iso(now), alert_id))
        for kind, (severity, detail) in wanted.items():
            if kind in open_kinds:
                cur.run("UPDATE central_alerts SET detail = ? WHERE id = ?", (detail, open_kinds[kind]))
            else:
                cur.run(f"INSERT INTO central_alerts ({ALERT_COLS}) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, NULL)",
                        (secrets.token_hex(8), ward, kiosk, kind, severity, detail, iso(now)))

    def sweep(self, now: datetime) -> None:
        """Re-evaluate every kiosk (stale telemetry needs no message to become an alert)."""
        rows = self.db.query("SELECT ward, kiosk, status, telemetry, state_since FROM central_kiosks")
        for ward, kiosk, status, telemetry, since in rows:
            with self.db.transaction() as cur:
                self._reconcile(cur, str(ward), str(kiosk), json.loads(status), json.loads(telemetry), now,
                                parse_at(since))

    def kiosks(self, ward: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT ward, kiosk, status, telemetry, state, state_since, updated_at FROM central_kiosks"
        rows = self.db.query(sql + (" WHERE ward = ?" if ward else "") + " ORDER BY ward, kiosk",
                             (ward,) if ward else ())
        return [{"ward": w, "kiosk": k, "status": json.loads(s), "telemetry": json.loads(t), "state": st,
                 "state_since": since, "updated_at": up} for w, k, s, t, st, since, up in rows]

    def last_events(self) -> dict[tuple[str, str], tuple[str, str, int]]:
        """Each kiosk's last stored event (type, time, seq), from the ingest's table and its ack mark."""
        rows = self.db.query("SELECT e.ward, e.kiosk, e.type, e.at, e.seq FROM central_acks a JOIN central_events e "
                             "ON e.ward = a.ward AND e.kiosk = a.kiosk AND e.log = a.log AND e.seq = a.seq")
        return {(str(w), str(k)): (str(t), str(at), int(seq)) for w, k, t, at, seq in rows}

    def series(self, ward: str, kiosk: str, limit: int = 240) -> list[dict[str, Any]]:
        rows = self.db.query("SELECT data FROM central_telemetry WHERE ward = ? AND kiosk = ? ORDER BY n DESC LIMIT ?",
                             (ward, kiosk, limit))
        return [json.loads(r[0]) for r in reversed(rows)]

    # alerts -------------------------------------------------------------------------------------------
    def alerts(self, ward: str | None = None, kiosk: str | None = None, open_only: bool = True,
               limit: int = 200) -> list[Alert]:
        where, params = [], []
        if ward:
            where.append("ward = ?")
            params.append(ward)
        if kiosk:
            where.append("kiosk = ?")
            params.append(kiosk)
        if open_only:
            where.append("cleared_at IS NULL")
        sql = f"SELECT {ALERT_COLS} FROM central_alerts" + (" WHERE " + " AND ".join(where) if where else "")
        rows = self.db.query(sql + " ORDER BY raised_at DESC LIMIT ?", (*params, limit))
        return [Alert(*(None if v is None else str(v) for v in r)) for r in rows]  # type: ignore[arg-type]

    def acknowledge(self, alert_id: str, who: str, note: str, now: datetime) -> None:
        note = note.strip()
        if not note or len(note) > 500:
            raise BadInput("Ghi chú xác nhận cần từ 1 đến 500 ký tự.")
        with self.db.transaction() as cur:
            if cur.run("UPDATE central_alerts SET ack_by = ?, ack_at = ?, ack_note = ? WHERE id = ?",
                       (who, iso(now), note, alert_id)) != 1:
                raise BadInput("Không có cảnh báo này.")

    # commands -----------------------------------------------------------------------------------------
    def command_sent(self, ward: str, kiosk: str, who: str, name: str, args: dict[str, Any], now: datetime) -> str:
        command_id = secrets.token_hex(8)
        with self.db.transaction() as cur:
            cur.run("INSERT INTO central_commands (id, ward, kiosk, who, at, name, args, reply, replied_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL)", (command_id, ward, kiosk, who, iso(now), name,
                                                                 json.dumps(args, ensure_ascii=False)))
        return command_id

    def command_replied(self, command_id: str, reply: dict[str, Any] | None, now: datetime) -> None:
        text = json.dumps(reply, ensure_ascii=False) if reply is not None else json.dumps(
            {"ok": False, "error": "Ki-ốt không trả lời kịp.", "code": "timeout"}, ensure_ascii=False)
        with self.db.transaction() as cur:
            cur.run("UPDATE central_commands SET reply = ?, replied_at = ? WHERE id = ?", (text, iso(now), command_id))

    def commands(self, ward: str, kiosk: str, limit: int = 50) -> list[tuple[Any, ...]]:
        return self.db.query("SELECT id, who, at, name, args, reply, replied_at FROM central_commands "
                             "WHERE ward = ? AND kiosk = ? ORDER BY at DESC LIMIT ?", (ward, kiosk, limit))
