"""The monthly evaluation report of the one-stop desk, per ward or for the city, as rows.

One row per (ward, service) plus a total row per ward: tickets issued, served, no-show, abandoned,
waiting p50/p90 and average in minutes, the share called within each service-level threshold, the
service time p50/p90 and the ratings (normalised 0-100). `central.xlsx` and `write_csv` shape the file.
"""

from __future__ import annotations

import calendar
import csv
import io
import re
from collections.abc import Sequence
from typing import Any

from central.db import Db
from central.errors import BadInput, NotFound
from central.kpi import Kpi, ratings, ticket_kpis
from central.users import WARD

MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
TOTAL = "Tổng cộng"


def month_range(month: str) -> tuple[str, str]:
    m = MONTH.match(month)
    if not m:
        raise BadInput(f"month {month!r} is not YYYY-MM")
    year, mon = int(m.group(1)), int(m.group(2))
    return f"{month}-01", f"{month}-{calendar.monthrange(year, mon)[1]:02d}"


def known_wards(db: Db) -> list[str]:
    # Summaries only follow acks, so every ward with figures has a row here (a small table).
    rows = db.query("SELECT DISTINCT ward FROM central_acks")
    return sorted(str(r[0]) for r in rows)


def check_ward(db: Db, ward: str) -> None:
    if not WARD.match(ward):
        raise BadInput(f"ward code {ward[:20]!r} is not 5 digits")
    if ward not in known_wards(db):
        raise NotFound(f"unknown ward {ward}: no kiosk of it has sent events")


def headers(thresholds: Sequence[int]) -> list[str]:
    return ["Mã phường/xã", "Dịch vụ", "Số phiếu cấp", "Đã phục vụ", "Vắng mặt", "Bỏ về",
            "Chờ trung bình (phút)", "Chờ p50 (phút)", "Chờ p90 (phút)",
            *[f"Gọi trong {m} phút (%)" for m in thresholds],
            "Xử lý p50 (phút)", "Xử lý p90 (phút)", "Số lượt đánh giá", "Mức hài lòng (0-100)"]


def _minutes(seconds: float | int | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 1)


def _pct(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def _row(ward: str, service: str, k: Kpi, thresholds: Sequence[int], rated: int, score: float | None) -> list[Any]:
    return [ward, service, k.issued, k.served, k.no_show, k.cancelled, _minutes(k.wait_avg), _minutes(k.wait_p50),
            _minutes(k.wait_p90), *[_pct(k.within.get(m, 0), k.issued) for m in thresholds],
            _minutes(k.service_p50), _minutes(k.service_p90), rated,
            None if score is None else round(100 * score, 1)]


def monthly_rows(db: Db, ward: str | None, month: str, thresholds: Sequence[int] = (15, 30)) -> list[list[Any]]:
    """The report's rows (headers first); ward None is the city, every ward one after the other."""
    start, end = month_range(month)
    if ward is not None:
        check_ward(db, ward)
    wards = [ward] if ward is not None else known_wards(db)
    rows: list[list[Any]] = [headers(thresholds)]
    for code in wards:
        for k in ticket_kpis(db, [code], start, end, by="service", thresholds=thresholds):
            rows.append(_row(code, str(k.key), k, thresholds, 0, None))
        total = ticket_kpis(db, [code], start, end, thresholds=thresholds)
        r = ratings(db, [code], start, end)
        rows.append(_row(code, TOTAL, total[0] if total else Kpi("all", within={m: 0 for m in thresholds}),
                         thresholds, r.count, r.normalised))
    return rows


def write_csv(rows: list[list[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")  # the BOM lets spreadsheet programs read UTF-8
