"""The mobile ticket page, `/t/{token}`, without login (#12 item 7): the ticket QR is this URL.

The token is the ticket id's 16 bytes in unpadded base64url (the kiosk writes it, agent/checkin/codes.py;
the id is a UUIDv7 with 74 random bits, so pages cannot be guessed). Shown: the service, the state, how
many are ahead in its service at its kiosk, the counter once called, and how fresh central's copy is
(the kiosk's last acknowledged event). Nothing personal: no number is ever linked to a person here.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import uuid
from html import escape
from typing import Any

from aiohttp import web

from central.errors import NotFound
from central.summarizer import local_time
from central.web import html
from central.web.app import central_of

TOKEN = re.compile(r"^[A-Za-z0-9_-]{22}$")


def ticket_id(token: str) -> str | None:
    if not TOKEN.match(token):
        return None
    try:
        return str(uuid.UUID(bytes=base64.urlsafe_b64decode(token + "==")))
    except (binascii.Error, ValueError):
        return None


def ticket_data(request: web.Request, ticket: str) -> dict[str, Any] | None:
    db = central_of(request).db
    row = db.one("SELECT ward, kiosk, day, service, counter, waited_seconds, outcome FROM central_tickets "
                 "WHERE ticket = ?", (ticket,))
    if row is None:
        return None
    ward, kiosk, day, service, counter, waited, outcome = row
    ahead = None
    if outcome is None and waited is None:
        # UUIDv7 ids sort by issue time, so the ones before it in its service are the ones ahead of it.
        first = db.one("SELECT COUNT(*) FROM central_tickets WHERE ward = ? AND kiosk = ? AND day = ? AND service = ? "
                       "AND outcome IS NULL AND waited_seconds IS NULL AND ticket < ?",
                       (ward, kiosk, day, service, ticket))
        ahead = int(first[0]) if first else 0
    fresh = db.one("SELECT MAX(at) FROM central_acks WHERE ward = ? AND kiosk = ?", (ward, kiosk))
    return {"ward": ward, "service": service, "counter": counter, "called": waited is not None,
            "outcome": outcome, "ahead": ahead, "fresh": fresh[0] if fresh else None}


def _state(d: dict[str, Any]) -> str:
    if d["outcome"] == "served":
        return ("Đã phục vụ xong. Mời ông/bà đánh giá chất lượng phục vụ trên màn hình ki-ốt "
                "hoặc tại trang công khai của phường/xã.")
    if d["outcome"] == "no_show":
        return "Đã gọi nhưng không có mặt. Xin lấy số mới tại ki-ốt."
    if d["outcome"] == "cancelled":
        return "Phiếu đã huỷ."
    if d["called"]:
        return f"Đã đến lượt: mời đến quầy số {d['counter']}." if d["counter"] else "Đã đến lượt."
    return f"Đang chờ: còn {d['ahead']} người trước ông/bà."


async def ticket_page(request: web.Request) -> web.Response:
    ticket = ticket_id(request.match_info["token"])
    d = await asyncio.to_thread(ticket_data, request, ticket) if ticket else None
    if d is None:
        raise NotFound("Không tìm thấy phiếu (trung tâm có thể chưa nhận được dữ liệu từ ki-ốt).")
    when = local_time(str(d["fresh"])) if d["fresh"] else None
    fresh = (f"Dữ liệu của ki-ốt cập nhật lúc {when:%H:%M:%S} ngày {when:%d/%m/%Y}; trang tự làm mới sau 20 giây."
             if when else "Chưa có dữ liệu xác nhận từ ki-ốt.")
    rating = (f'<p><a href="/public/{escape(str(d["ward"]))}">Xem chất lượng phục vụ của phường/xã</a></p>'
              if d["outcome"] == "served" else "")
    body = (f"<h1>Phiếu thứ tự: {escape(str(d['service']))}</h1>"
            f'<p class="big" data-testid="state">{escape(_state(d))}</p>{rating}'
            f'<p class="note" data-testid="fresh">{escape(fresh)}</p>')
    page = html.page("Phiếu thứ tự", body).replace("<head>", '<head><meta http-equiv="refresh" content="20">', 1)
    return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-store"})
