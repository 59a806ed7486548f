"""The public accountability page of a ward, `/public/{ward}`, without login (#12 item 5).

Aggregates only: people waiting now per service, this month's average wait and service level, ratings
per scale as given and normalised, how complete and how fresh the figures are. No free text, no phone
numbers, no ticket numbers, no identity data.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from html import escape
from typing import Any

from aiohttp import web

from central.errors import BadInput, NotFound
from central.kpi import completeness, ratings, ticket_kpis
from central.report import known_wards
from central.summarizer import local_time
from central.users import WARD
from central.web import html
from central.web.app import central_of


def public_data(request: web.Request, ward: str) -> dict[str, Any]:
    central = central_of(request)
    db, levels = central.db, central.settings.service_level_minutes
    now = central.settings.today()
    waiting = db.query("SELECT service, COUNT(*) FROM central_tickets WHERE ward = ? AND day = ? "
                       "AND outcome IS NULL AND waited_seconds IS NULL GROUP BY service ORDER BY service",
                       (ward, now.isoformat()))
    start = now.replace(day=1).isoformat()
    month = ticket_kpis(db, [ward], start, now.isoformat(), thresholds=levels)
    fresh = db.one("SELECT MAX(at) FROM central_acks WHERE ward = ?", (ward,))
    return {"waiting": waiting, "month": month[0] if month else None, "levels": levels,
            "ratings": ratings(db, [ward], start, now.isoformat()), "completeness": completeness(db, [ward]),
            "fresh": str(fresh[0]) if fresh and fresh[0] else None}


def _fresh(at: str | None) -> str:
    if at is None:
        return "Chưa nhận được sự kiện nào của phường/xã này."
    when: datetime = local_time(at)
    return f"Dữ liệu mới nhất từ ki-ốt lúc {when:%H:%M} ngày {when:%d/%m/%Y} (giờ Việt Nam)."


async def public(request: web.Request) -> web.Response:
    ward = request.match_info["ward"]
    if not WARD.match(ward):
        raise BadInput("Mã phường/xã phải gồm 5 chữ số.")
    if ward not in await asyncio.to_thread(known_wards, central_of(request).db):
        raise NotFound(f"Không có phường/xã {ward}.")
    d = await asyncio.to_thread(public_data, request, ward)
    m, r = d["month"], d["ratings"]
    cards = "".join([html.card(html.minutes(m.wait_avg if m else None), "Thời gian chờ trung bình tháng này"),
                     *[html.card(html.percent(m.rate(m.within.get(x, 0)) if m else None),
                                 f"Được gọi trong {x} phút") for x in d["levels"]],
                     html.card(html.percent(r.normalised), f"Mức hài lòng ({r.count} lượt đánh giá)")])
    waiting = html.table(["Dịch vụ", "Đang chờ"], d["waiting"] or [["Không có ai đang chờ", 0]], "waiting")
    scales = "".join(
        f"<h3>Thang {scale} mức</h3>" + html.table([f"Mức {s}" for s in scores], [list(scores.values())],
                                                    f"ratings-{scale}")
        for scale, scores in r.scales.items()) or "<p>Chưa có đánh giá trong tháng này.</p>"
    body = (f"<h1>Bộ phận một cửa phường/xã {ward}: công khai chất lượng phục vụ</h1>"
            f"<h2>Đang chờ</h2>{waiting}<h2>Tháng này</h2><div class=\"cards\">{cards}</div>"
            f"<h2>Đánh giá của người dân (như đã chấm)</h2>{scales}"
            f'<p class="note" data-testid="fresh">{escape(_fresh(d["fresh"]))}</p>'
            f'<p class="note" data-testid="completeness">{escape(d["completeness"].sentence())}</p>'
            '<p class="note">Số liệu tổng hợp từ các ki-ốt; không có thông tin cá nhân.</p>')
    return web.Response(text=html.page(f"Phường/xã {ward}", body), content_type="text/html",
                        headers={"Cache-Control": "public, max-age=30"})
