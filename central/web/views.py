"""Central's pages: login, KPIs (ward and city), reports, events, fleet list and the public page."""

from __future__ import annotations

import asyncio
import re
from datetime import date, timedelta
from html import escape
from typing import Any

from aiohttp import web

from central.daystats import load as load_days
from central.errors import BadInput, Forbidden, NotFound
from central.kpi import busiest_hours, completeness, daily_counts, ratings, ticket_kpis
from central.report import known_wards, monthly_rows, write_csv
from central.sessions import csrf_ok
from central.users import WARD, User
from central.web import html, public, ticket
from central.web.app import LOGIN_COOKIE, SESSION_COOKIE, central_of, new_login_token, require, see_other, set_cookie

DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_DAYS = 366
EVENT_ROWS = 200


def today(request: web.Request) -> date:
    return central_of(request).settings.today()


def day_param(request: web.Request, name: str, default: date) -> str:
    text = request.query.get(name, "")
    if not text:
        return default.isoformat()
    if not DAY.match(text):
        raise BadInput(f"Ngày “{text[:20]}” không đúng dạng YYYY-MM-DD.")
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise BadInput(f"Ngày “{text[:20]}” không tồn tại.") from None


async def ward_param(request: web.Request, user: User) -> str | None:
    """The ward filter: None is every ward the user sees; refused if unknown or outside its scope."""
    ward = request.query.get("ward", "")
    if not ward:
        return None
    if not WARD.match(ward):
        raise BadInput(f"Mã phường/xã “{ward[:20]}” phải gồm 5 chữ số.")
    if not user.sees(ward):
        raise Forbidden(f"Tài khoản của bạn không được xem phường/xã {ward}.")
    if ward not in await asyncio.to_thread(known_wards, central_of(request).db):
        raise NotFound(f"Không có phường/xã {ward}: chưa ki-ốt nào của phường/xã này gửi dữ liệu.")
    return ward


async def login_page(request: web.Request, message: str = "", status: int = 200) -> web.Response:
    token = new_login_token()
    note = f'<p class="error" role="alert">{escape(message)}</p>' if message else ""
    body = (f'<form class="login" method="post" action="/login"><h1>Đăng nhập</h1>{note}'
            f'<input type="hidden" name="csrf" value="{token}">'
            '<label>Tên đăng nhập<input name="name" autocomplete="username" required maxlength="64"></label>'
            '<label>Mật khẩu<input name="password" type="password" autocomplete="current-password" required '
            'maxlength="1024"></label><button class="primary" type="submit">Đăng nhập</button></form>')
    response = web.Response(text=html.page("Đăng nhập", body), content_type="text/html", status=status)
    set_cookie(response, request, LOGIN_COOKIE, token, 3600)
    return response


async def login_get(request: web.Request) -> web.Response:
    return await login_page(request)


async def login_post(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    given, expected = str(form.get("csrf", "")), request.cookies.get(LOGIN_COOKIE, "")
    if not expected or given != expected:
        return await login_page(request, "Phiên đăng nhập đã hết hạn, vui lòng thử lại.", 403)
    name, password = str(form.get("name", ""))[:64], str(form.get("password", ""))
    from central.errors import Throttled, Unauthorized

    try:
        session = await asyncio.to_thread(central_of(request).logins.login, name, password,
                                          request.remote or "unknown")
    except (Unauthorized, Throttled) as exc:
        return await login_page(request, exc.message, exc.http_status)
    response = see_other("/kpi")
    set_cookie(response, request, SESSION_COOKIE, session.token, int(central_of(request).logins.limits.session
                                                                     .total_seconds()))
    response.del_cookie(LOGIN_COOKIE, path="/")
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    session = await require(request)
    form = await request.post()
    if not csrf_ok(session, str(form.get("csrf", ""))):
        raise Forbidden("Thiếu mã chống giả mạo (CSRF); không có gì thay đổi.")
    await asyncio.to_thread(central_of(request).logins.logout, session.token)
    response = see_other("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


async def root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/kpi")


def _filters(action: str, wards: list[str], ward: str | None, start: str, end: str, city: bool) -> str:
    options = ('<option value="">Toàn thành phố</option>' if city else "") + "".join(
        f'<option value="{w}"{" selected" if w == ward else ""}>{w}</option>' for w in wards)
    return (f'<form class="filters" method="get" action="{action}"><label>Phường/xã<select name="ward">{options}'
            f'</select></label><label>Từ ngày<input type="date" name="from" value="{start}"></label>'
            f'<label>Đến ngày<input type="date" name="to" value="{end}"></label>'
            '<button class="primary" type="submit">Xem</button></form>')


def kpi_data(request: web.Request, wards: list[str] | None, start: str, end: str) -> dict[str, Any]:
    central = central_of(request)
    db, levels = central.db, central.settings.service_level_minutes
    days = load_days(db, wards, start, end)  # read once, merged per grouping
    whole = ticket_kpis(db, wards, start, end, thresholds=levels, rows=days)
    return {
        "total": whole[0] if whole else None,
        "by_service": ticket_kpis(db, wards, start, end, by="service", thresholds=levels, rows=days),
        "by_counter": ticket_kpis(db, wards, start, end, by="counter", thresholds=levels) if wards and len(
            wards) == 1 else [],
        "by_ward": ticket_kpis(db, wards, start, end, by="ward", thresholds=levels, rows=days),
        "by_day": ticket_kpis(db, wards, start, end, by="day", thresholds=levels, rows=days),
        "hours": busiest_hours(db, wards, start, end, rows=days),
        "ratings": ratings(db, wards, start, end),
        "counts": daily_counts(db, wards, start, end),
        "completeness": completeness(db, wards),
        "levels": levels,
    }


def _kpi_rows(kpis: list[Any], levels: tuple[int, ...]) -> list[list[Any]]:
    return [[k.key if k.key is not None else "chưa gọi", k.issued, k.served, k.no_show, k.cancelled,
             html.minutes(k.wait_p50), html.minutes(k.wait_p90),
             *[html.percent(k.rate(k.within.get(m, 0))) for m in levels],
             html.minutes(k.service_p50), html.minutes(k.service_p90)] for k in kpis]


async def kpi(request: web.Request) -> web.Response:
    session = await require(request)
    user = session.user
    ward = await ward_param(request, user)
    first = today(request).replace(day=1)
    start, end = day_param(request, "from", first), day_param(request, "to", today(request))
    if start > end or (date.fromisoformat(end) - date.fromisoformat(start)) > timedelta(days=MAX_DAYS):
        raise BadInput(f"Khoảng ngày phải từ 1 đến {MAX_DAYS} ngày, ngày đầu trước ngày cuối.")
    scope = user.scope()
    wards = [ward] if ward else scope
    d = await asyncio.to_thread(kpi_data, request, wards, start, end)
    all_wards = await asyncio.to_thread(known_wards, central_of(request).db)
    visible = [w for w in all_wards if user.sees(w)]
    levels: tuple[int, ...] = d["levels"]
    t = d["total"]
    counts = d["counts"]
    answered, ring = counts.get("call.answered", (0, 0))
    r = d["ratings"]
    title = f"Phường/xã {ward}" if ward else ("Toàn thành phố" if scope is None else "Các phường/xã được giao")
    cards = "".join([
        html.card(html.number(t.issued if t else 0), "Phiếu đã cấp"),
        html.card(html.number(t.served if t else 0), "Đã phục vụ"),
        html.card(html.minutes(t.wait_p50 if t else None), "Thời gian chờ p50"),
        html.card(html.minutes(t.wait_p90 if t else None), "Thời gian chờ p90"),
        *[html.card(html.percent(t.rate(t.within.get(m, 0)) if t else None), f"Được gọi trong {m} phút")
          for m in levels],
        html.card(html.percent(t.rate(t.no_show) if t else None), "Tỷ lệ vắng mặt"),
        html.card(html.percent(t.rate(t.cancelled) if t else None), "Tỷ lệ bỏ về"),
        html.card(html.minutes(t.service_p50 if t else None), "Thời gian xử lý p50"),
        html.card(html.minutes(t.service_p90 if t else None), "Thời gian xử lý p90"),
        html.card(html.percent(r.normalised), f"Mức hài lòng ({r.count} lượt đánh giá)"),
        html.card(html.number(counts.get("feedback", (0, 0))[0]), "Phản ánh, kiến nghị"),
        html.card(f"{answered} / {counts.get('call.missed', (0, 0))[0]}", "Cuộc gọi video: trả lời / nhỡ"),
        html.card(html.number(ring / answered if answered else None, 0, " giây"), "Thời gian chờ trả lời"),
    ])
    head = ["", "Phiếu cấp", "Phục vụ", "Vắng mặt", "Bỏ về", "Chờ p50", "Chờ p90",
            *[f"Gọi ≤ {m} phút" for m in levels], "Xử lý p50", "Xử lý p90"]
    body = (f'<h1>Chỉ số: {escape(title)}</h1>{_filters("/kpi", visible, ward, start, end, scope is None)}'
            f'<p class="note" data-testid="completeness">{escape(d["completeness"].sentence())}</p>'
            f'<div class="cards" data-testid="cards">{cards}</div>'
            '<h2>Theo dịch vụ</h2>' + html.table(["Dịch vụ", *head[1:]], _kpi_rows(d["by_service"], levels),
                                                 "by-service"))
    if d["by_counter"]:
        body += f'<h2>Theo quầy</h2>{html.table(["Quầy", *head[1:]], _kpi_rows(d["by_counter"], levels))}'
    if not ward:
        body += f'<h2>Theo phường/xã</h2>{html.table(["Phường/xã", *head[1:]], _kpi_rows(d["by_ward"], levels))}'
    body += f'<h2>Theo ngày</h2>{html.table(["Ngày", *head[1:]], _kpi_rows(d["by_day"], levels))}'
    hours = sorted(d["hours"])
    body += f'<h2>Giờ đông nhất (phiếu cấp theo giờ)</h2>{html.bars([(f"{h}h", n) for h, n in hours], "Giờ")}'
    rating_rows = [[f"Thang {s} mức", ", ".join(f"mức {lvl}: {n}" for lvl, n in sc.items())]
                   for s, sc in r.scales.items()]
    if rating_rows:
        body += '<h2>Đánh giá (như người dân đã chọn)</h2>' + html.table(["Thang", "Số lượt theo mức"], rating_rows)
    return web.Response(text=html.page("Chỉ số", body, user, session.csrf), content_type="text/html")


async def kpi_api(request: web.Request) -> web.Response:
    session = await require(request)
    ward = await ward_param(request, session.user)
    start, end = day_param(request, "from", today(request).replace(day=1)), day_param(request, "to", today(request))
    if start > end or (date.fromisoformat(end) - date.fromisoformat(start)) > timedelta(days=MAX_DAYS):
        raise BadInput(f"Khoảng ngày phải từ 1 đến {MAX_DAYS} ngày.")
    d = await asyncio.to_thread(kpi_data, request, [ward] if ward else session.user.scope(), start, end)
    return web.json_response({
        "ward": ward, "from": start, "to": end,
        "total": d["total"].public() if d["total"] else None,
        "by_service": [k.public() for k in d["by_service"]], "by_ward": [k.public() for k in d["by_ward"]],
        "by_counter": [k.public() for k in d["by_counter"]], "by_day": [k.public() for k in d["by_day"]],
        "busiest_hours": d["hours"], "ratings": d["ratings"].public(),
        "counts": {m: {"count": n, "total": t} for m, (n, t) in d["counts"].items()},
        "completeness": d["completeness"].public()})


async def reports(request: web.Request) -> web.Response:
    session = await require(request)
    visible = [w for w in await asyncio.to_thread(known_wards, central_of(request).db) if session.user.sees(w)]
    city = '<option value="">Toàn thành phố</option>' if session.user.scope() is None else ""
    options = city + "".join(f'<option value="{w}">{w}</option>' for w in visible)
    month = today(request).strftime("%Y-%m")
    body = ('<h1>Báo cáo tháng</h1><p class="note">Theo từng dịch vụ: số phiếu cấp, đã phục vụ, vắng mặt, bỏ về, '
            'thời gian chờ, tỷ lệ được gọi đúng hạn, thời gian xử lý, mức hài lòng.</p>'
            f'<form class="filters" method="get" action="/reports/download"><label>Phường/xã<select name="ward">'
            f'{options}</select></label><label>Tháng<input type="month" name="month" value="{month}" required>'
            '</label><label>Định dạng<select name="format"><option value="xlsx">Excel (XLSX)</option>'
            '<option value="csv">CSV</option></select></label>'
            '<button class="primary" type="submit">Tải báo cáo</button></form>')
    return web.Response(text=html.page("Báo cáo", body, session.user, session.csrf), content_type="text/html")


async def report_download(request: web.Request) -> web.Response:
    session = await require(request)
    ward = await ward_param(request, session.user)
    if ward is None and session.user.scope() is not None:
        raise Forbidden("Tài khoản của bạn chỉ xem báo cáo của các phường/xã được giao.")
    month, fmt = request.query.get("month", ""), request.query.get("format", "xlsx")
    if fmt not in ("csv", "xlsx"):
        raise BadInput("Định dạng phải là csv hoặc xlsx.")
    levels = central_of(request).settings.service_level_minutes
    rows = await asyncio.to_thread(monthly_rows, central_of(request).db, ward, month, levels)
    name = f"bao-cao-{ward or 'thanh-pho'}-{month}.{fmt}"
    if fmt == "csv":
        data, kind = write_csv(rows), "text/csv; charset=utf-8"
    else:
        from central.xlsx import write_xlsx

        data = await asyncio.to_thread(write_xlsx, rows, f"{ward or 'thanh-pho'} {month}")
        kind = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return web.Response(body=data, headers={"Content-Type": kind,
                                            "Content-Disposition": f'attachment; filename="{name}"'})


async def events(request: web.Request) -> web.Response:
    session = await require(request, ("admin", "ops", "officer"),
                            "Lãnh đạo chỉ xem chỉ số và báo cáo, không xem sự kiện của từng người dân.")
    ward = await ward_param(request, session.user)
    if ward is None:
        raise BadInput("Chọn một phường/xã (tham số ward).")
    rows = await asyncio.to_thread(central_of(request).db.query,
                                   "SELECT kiosk, seq, type, at FROM central_events WHERE ward = ? "
                                   "ORDER BY received_at DESC, seq DESC LIMIT ?", (ward, EVENT_ROWS))
    body = (f"<h1>Sự kiện gần nhất của phường/xã {ward}</h1>"
            '<p class="note">Chỉ loại sự kiện và thời điểm; nội dung không hiển thị ở giai đoạn này.</p>'
            + html.table(["Ki-ốt", "Số thứ tự", "Loại", "Thời điểm (UTC)"], rows, "events"))
    return web.Response(text=html.page("Sự kiện", body, session.user, session.csrf), content_type="text/html")


async def fleet(request: web.Request) -> web.Response:
    session = await require(request, ("admin", "ops"), "Chỉ vận hành và quản trị xem danh sách ki-ốt.")
    rows = await asyncio.to_thread(
        central_of(request).db.query,
        "SELECT a.ward, a.kiosk, a.seq, a.at, e.type, e.at FROM central_acks a LEFT JOIN central_events e "
        "ON e.ward = a.ward AND e.kiosk = a.kiosk AND e.seq = a.seq ORDER BY a.ward, a.kiosk")
    shown = [[w, k, s, at or "—", t or "—", eat or "—"] for w, k, s, at, t, eat in rows]
    body = ("<h1>Ki-ốt</h1>" + html.table(["Phường/xã", "Ki-ốt", "Đã xác nhận đến", "Lúc xác nhận (UTC)",
                                             "Sự kiện cuối", "Thời điểm (UTC)"], shown, "fleet"))
    return web.Response(text=html.page("Ki-ốt", body, session.user, session.csrf), content_type="text/html")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", root)
    app.router.add_get("/login", login_get)
    app.router.add_post("/login", login_post)
    app.router.add_post("/logout", logout)
    app.router.add_get("/kpi", kpi)
    app.router.add_get("/api/kpi", kpi_api)
    app.router.add_get("/reports", reports)
    app.router.add_get("/reports/download", report_download)
    app.router.add_get("/events", events)
    app.router.add_get("/fleet", fleet)
    app.router.add_get("/public/{ward}", public.public)
    app.router.add_get("/t/{token}", ticket.ticket_page)
