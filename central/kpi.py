"""KPIs by SQL over the summaries, the same statements on SQLite and PostgreSQL.

Definitions (docs/integration.md, "Central KPIs"): rates are shares of the tickets issued in the range;
percentiles are nearest-rank (the smallest value with at least p % of the values at or below it),
computed with window functions so both databases give the same exact figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from central import daystats
from central import histogram as hist
from central.db import Db

GroupBy = Literal["ward", "service", "counter", "day", "all"]
GROUP_COLUMNS: dict[str, str] = {"ward": "ward", "service": "service", "counter": "counter", "day": "day",
                                 "all": "'all'"}


@dataclass
class Kpi:
    key: Any
    issued: int = 0
    served: int = 0
    no_show: int = 0
    cancelled: int = 0
    called: int = 0
    within: dict[int, int] = field(default_factory=dict)  # minutes threshold → tickets called within it
    wait_p50: int | None = None
    wait_p90: int | None = None
    service_p50: int | None = None
    service_p90: int | None = None
    wait_avg: float | None = None

    def rate(self, part: int) -> float | None:
        return part / self.issued if self.issued else None

    def public(self) -> dict[str, Any]:
        out = asdict(self)
        out["no_show_rate"] = self.rate(self.no_show)
        out["abandonment_rate"] = self.rate(self.cancelled)
        out["service_level"] = {str(m): self.rate(n) for m, n in self.within.items()}
        out["within"] = {str(m): n for m, n in self.within.items()}
        return out


def _scope(wards: Sequence[str] | None, start: str, end: str, alias: str = "") -> tuple[str, list[Any]]:
    p = f"{alias}." if alias else ""
    where = f"{p}day >= ? AND {p}day <= ?"
    params: list[Any] = [start, end]
    if wards is not None:
        where += f" AND {p}ward IN ({', '.join('?' for _ in wards) or 'NULL'})"
        params.extend(wards)
    return where, params


def _percentiles(db: Db, column: str, group: str, where: str, params: list[Any]) -> dict[Any, tuple[int, int]]:
    # PostgreSQL refuses a constant in PARTITION BY or GROUP BY: the whole range is one window instead.
    part = "" if group == GROUP_COLUMNS["all"] else f"PARTITION BY {group}"
    rows = db.query(
        f"SELECT g, MIN(CASE WHEN rn * 100 >= 50 * n THEN v END), MIN(CASE WHEN rn * 100 >= 90 * n THEN v END) "
        f"FROM (SELECT {group} AS g, {column} AS v, ROW_NUMBER() OVER ({part} ORDER BY {column}) AS rn, "
        f"COUNT(*) OVER ({part}) AS n FROM central_tickets WHERE {where} AND {column} IS NOT NULL) t "
        f"GROUP BY 1", params)
    return {g: (int(p50), int(p90)) for g, p50, p90 in rows}


def ticket_kpis(db: Db, wards: Sequence[str] | None, start: str, end: str, by: GroupBy = "all",
                thresholds: Sequence[int] = (15, 30), rows: list[daystats.DayRow] | None = None) -> list[Kpi]:
    """Ticket figures for the wards (None: the whole city) and the local days start..end, grouped.

    By ward, service, day or in all: merged from the daily summaries (`rows`, read once per page by the
    caller, or here), percentiles to the histogram's bucket (central/histogram.py). By counter (one
    ward's page): exact, over that ward's tickets.
    """
    if by != "counter":
        return _from_days(daystats.load(db, wards, start, end) if rows is None else rows, by, thresholds)
    return _from_tickets(db, wards, start, end, by, thresholds)


def _from_days(rows: list[daystats.DayRow], by: GroupBy, thresholds: Sequence[int]) -> list[Kpi]:
    groups: dict[Any, list[daystats.DayRow]] = {}
    for r in rows:
        groups.setdefault("all" if by == "all" else getattr(r, by), []).append(r)
    result = []
    for key in sorted(groups):
        part = groups[key]
        issued, served, no_show, cancelled, called, wait_sum = (sum(r.counts[i] for r in part) for i in range(6))
        waits = hist.merge(r.waits for r in part)
        services = hist.merge(r.services for r in part)
        result.append(Kpi(key=key, issued=issued, served=served, no_show=no_show, cancelled=cancelled, called=called,
                          within={int(m): hist.at_most(waits, int(m) * 60) for m in thresholds},
                          wait_p50=hist.percentile(waits, 50), wait_p90=hist.percentile(waits, 90),
                          service_p50=hist.percentile(services, 50), service_p90=hist.percentile(services, 90),
                          wait_avg=wait_sum / called if called else None))
    return result


def _from_tickets(db: Db, wards: Sequence[str] | None, start: str, end: str, by: GroupBy,
                  thresholds: Sequence[int]) -> list[Kpi]:
    group = GROUP_COLUMNS[by]
    where, params = _scope(wards, start, end)
    within = ", ".join(f"SUM(CASE WHEN waited_seconds <= {int(m) * 60} THEN 1 ELSE 0 END)" for m in thresholds)
    # PostgreSQL: percentile_disc is the same nearest-rank figure, computed in the same scan (one sort
    # per column); SQLite has no ordered-set aggregates, so window functions rank the values there.
    pct = "".join(f", percentile_disc({p}) WITHIN GROUP (ORDER BY {col})"
                  for col in ("waited_seconds", "service_seconds") for p in ("0.5", "0.9")) if db.postgres else ""
    rows = db.query(
        f"SELECT {group} AS g, COUNT(*), SUM(CASE WHEN outcome = 'served' THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN outcome = 'no_show' THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN outcome = 'cancelled' THEN 1 ELSE 0 END), "
        f"COUNT(waited_seconds), AVG(waited_seconds), {within}{pct} FROM central_tickets WHERE {where} "
        "GROUP BY 1 ORDER BY 1", params)
    if db.postgres:
        waits = {r[0]: (r[-4], r[-3]) for r in rows}
        services = {r[0]: (r[-2], r[-1]) for r in rows}
        rows = [r[:-4] for r in rows]
    else:
        waits = _percentiles(db, "waited_seconds", group, where, params)
        services = _percentiles(db, "service_seconds", group, where, params)
    result = []
    for g, issued, served, no_show, cancelled, called, avg, *inside in rows:
        k = Kpi(key=g, issued=int(issued), served=int(served or 0), no_show=int(no_show or 0),
                cancelled=int(cancelled or 0), called=int(called),
                within={int(m): int(n or 0) for m, n in zip(thresholds, inside, strict=True)},
                wait_avg=float(avg) if avg is not None else None)
        k.wait_p50, k.wait_p90 = waits.get(g, (None, None))
        k.service_p50, k.service_p90 = services.get(g, (None, None))
        result.append(k)
    return result


def busiest_hours(db: Db, wards: Sequence[str] | None, start: str, end: str,
                  rows: list[daystats.DayRow] | None = None) -> list[tuple[int, int]]:
    """(local hour, tickets issued in it), busiest first."""
    days = daystats.load(db, wards, start, end) if rows is None else rows
    counts = hist.merge((r.hours for r in days), size=24)
    return sorted(((h, n) for h, n in enumerate(counts) if n), key=lambda x: (-x[1], x[0]))


@dataclass
class Ratings:
    scales: dict[int, dict[int, int]]  # scale → score → count, shown as given
    count: int
    normalised: float | None  # mean of (score - 1) / (scale - 1), 0..1 across scales

    def public(self) -> dict[str, Any]:
        return {"scales": {str(s): {str(k): v for k, v in d.items()} for s, d in self.scales.items()},
                "count": self.count, "normalised": self.normalised}


def ratings(db: Db, wards: Sequence[str] | None, start: str, end: str) -> Ratings:
    where, params = _scope(wards, start, end)
    metrics = [f"ward.rating.{scale}.{score}" for scale in (3, 4, 5) for score in range(1, scale + 1)]
    rows = db.query(f"SELECT metric, SUM(n) FROM central_daily WHERE {where} AND metric IN "
                    f"({', '.join('?' for _ in metrics)}) GROUP BY metric", [*params, *metrics])
    scales: dict[int, dict[int, int]] = {}
    weight = 0.0
    count = 0
    for metric, n in rows:
        *_, scale, score = str(metric).split(".")
        scales.setdefault(int(scale), {})[int(score)] = int(n)
        weight += int(n) * (int(score) - 1) / (int(scale) - 1)
        count += int(n)
    for size, scores in scales.items():
        for level in range(1, size + 1):
            scores.setdefault(level, 0)
    ordered = {s: dict(sorted(d.items())) for s, d in sorted(scales.items())}
    return Ratings(ordered, count, weight / count if count else None)


def daily_counts(db: Db, wards: Sequence[str] | None, start: str, end: str) -> dict[str, tuple[int, int]]:
    """Feedback and call figures: metric → (count, total), e.g. call.answered → (calls, ring seconds)."""
    where, params = _scope(wards, start, end)
    rows = db.query(f"SELECT metric, SUM(n), SUM(total) FROM central_daily WHERE {where} "
                    "AND metric IN ('feedback', 'call.answered', 'call.missed') GROUP BY metric", params)
    return {str(m): (int(n), int(t)) for m, n, t in rows}


@dataclass
class Completeness:
    kiosks: int
    summarised_to: dict[str, int]  # "ward/kiosk" → every event up to this seq is in the figures
    gaps: int  # kiosks with events stored after a missing one (held back until it arrives)
    behind: int  # kiosks whose acknowledged events are not summarised yet

    def sentence(self) -> str:
        if not self.kiosks:
            return "Chưa có ki-ốt nào gửi sự kiện."
        # The wording: complete up to event N of every kiosk; K kiosks still have unsent events.
        text = (f"Đầy đủ đến sự kiện {min(self.summarised_to.values())} của mọi ki-ốt ({self.kiosks} ki-ốt, "
                f"mỗi ki-ốt đến sự kiện cuối đã xác nhận). {self.gaps} ki-ốt còn sự kiện chưa gửi đủ "
                "(thiếu một đoạn, phần sau đã đến nhưng chưa tính).")
        if self.behind:
            text += f" {self.behind} ki-ốt đang được tổng hợp."
        return text + " Sự kiện còn nằm trên ki-ốt chưa gửi thì trung tâm chưa biết."

    def public(self) -> dict[str, Any]:
        return {**asdict(self), "sentence": self.sentence()}


def completeness(db: Db, wards: Sequence[str] | None) -> Completeness:
    where = ""
    params: list[Any] = []
    if wards is not None:
        where = f"WHERE a.ward IN ({', '.join('?' for _ in wards) or 'NULL'})"
        params = list(wards)
    rows = db.query(
        "SELECT a.ward, a.kiosk, a.log, a.seq, COALESCE(s.seq, 0), "
        "CASE WHEN EXISTS (SELECT 1 FROM central_events e WHERE e.ward = a.ward AND e.kiosk = a.kiosk "
        "AND e.log = a.log AND e.seq > a.seq) THEN 1 ELSE 0 END "
        "FROM central_acks a LEFT JOIN central_summary_cursor s ON s.ward = a.ward AND s.kiosk = a.kiosk "
        f"AND s.log = a.log {where} ORDER BY a.ward, a.kiosk, a.log", params)
    # A kiosk whose database was replaced has several logs; each is named apart ("ward/kiosk#log").
    return Completeness(kiosks=len({(w, k) for w, k, *_ in rows}),
                        summarised_to={f"{w}/{k}" + (f"#{lg}" if lg else ""): int(cur) for w, k, lg, _, cur, _ in rows},
                        gaps=sum(int(g) for *_, g in rows), behind=sum(1 for _, _, _, a, cur, _ in rows if cur < a))
