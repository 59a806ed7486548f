"""City ops pages: the fleet (every kiosk, its alerts, live by polling /api/fleet) and one kiosk
(telemetry charts, events, remote commands with their replies). Commands: ops and admin only.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from html import escape
from typing import Any

from aiohttp import web

from central.db import Db
from central.errors import BadInput, CentralError, Forbidden, NotFound
from central.fleet.alerts import parse_at
from central.fleet.store import Alert, FleetStore, ensure_fleet_schema
from central.fleet.watcher import SEGMENT, FleetWatcher
from central.mqtt import CentralMqtt
from central.sessions import Session, csrf_ok
from central.web import html
from central.web.app import CENTRAL, central_of, require, see_other

FLEET = web.AppKey("fleet_store", FleetStore)
WATCHER = web.AppKey("fleet_watcher", FleetWatcher)
VIEW_ROLES = ("admin", "ops", "officer")
COMMAND_ROLES = ("admin", "ops")
EVENTS_PAGE = 50
EVENT_TYPE = re.compile(r"^[a-z_]{1,32}(\.[a-z_]{1,32}){0,3}$")
SEVERITY_NAMES = {"critical": "nghiêm trọng", "warning": "cảnh báo"}
ALERT_NAMES = {"offline": "Mất kết nối", "telemetry_stale": "Số liệu cũ", "backlog": "Tồn sự kiện",
               "oldest_unsent": "Sự kiện chờ lâu", "camera_fault": "Lỗi camera", "clock": "Đồng hồ sai",
               "disk_low": "Đĩa sắp đầy", "storage_error": "Lỗi lưu trữ", "ack_conflict": "Xung đột nhật ký",
               "printer_paper_low": "Máy in sắp hết giấy", "printer_paper_end": "Máy in hết giấy",
               "queue_anomaly": "Hàng chờ bất thường"}


def fleet_of(request: web.Request) -> FleetStore:
    return request.app[FLEET]


def now() -> datetime:
    return datetime.now(UTC)


def ago(at: str | None) -> str:
    when = parse_at(at)
    if when is None:
        return "—"
    seconds = max(0, int((now() - when).total_seconds()))
    if seconds < 120:
        return f"{seconds} giây trước"
    if seconds < 7200:
        return f"{seconds // 60} phút trước"
    return f"{seconds // 3600} giờ trước"


def kiosk_row(k: dict[str, Any], names: dict[str, str], alerts: list[Alert],
              last: tuple[str, str, int] | None = None) -> dict[str, Any]:
    s, t = k["status"], k["telemetry"]
    cam = t.get("camera") if isinstance(t.get("camera"), dict) else {}
    call = t.get("call") if isinstance(t.get("call"), dict) else {}
    mine = [a for a in alerts if a.ward == k["ward"] and a.kiosk == k["kiosk"]]
    return {"ward": k["ward"], "ward_name": names.get(k["ward"], k["ward"]), "kiosk": k["kiosk"],
            "state": k["state"], "state_since": k["state_since"], "since": ago(k["state_since"]),
            "boot": s.get("boot", t.get("boot")), "version": s.get("version", t.get("version")),
            "backlog": t.get("backlog"), "oldest_unsent_age_s": t.get("oldest_unsent_age_s"),
            "camera": {"state": cam.get("state"), "fps": cam.get("fps"), "drops": total(cam.get("drops")),
                       "faults": cam.get("faults")},
            "disk_free_mb": t.get("disk_free_mb"), "clock": t.get("clock"), "call": call.get("state"),
            "queue_length": t.get("queue_length"), "telemetry_at": t.get("at"),
            "last_event": None if last is None else {"type": last[0], "at": last[1], "seq": last[2]},
            "alerts": [alert_json(a) for a in mine]}


def total(drops: Any) -> Any:
    """Camera drops come per consumer (`{"scanner": 3, "call": 1}`); the fleet shows their sum."""
    if isinstance(drops, dict):
        return sum(v for v in drops.values() if isinstance(v, int))
    return drops


def alert_json(a: Alert) -> dict[str, Any]:
    return {"id": a.id, "ward": a.ward, "kiosk": a.kiosk, "kind": a.kind, "name": ALERT_NAMES.get(a.kind, a.kind),
            "severity": a.severity, "detail": a.detail, "raised_at": a.raised_at, "cleared_at": a.cleared_at,
            "ack_by": a.ack_by, "ack_at": a.ack_at, "ack_note": a.ack_note}


def fleet_ward(request: web.Request, session: Session) -> str | None:
    ward = request.query.get("ward", "")
    if not ward:
        return None
    if not SEGMENT.match(ward):
        raise BadInput("Mã phường/xã không hợp lệ.")
    if not session.user.sees(ward):
        raise Forbidden(f"Tài khoản của bạn không được xem phường/xã {ward}.")
    return ward


def fleet_data(store: FleetStore, ward: str | None, scope: list[str] | None) -> dict[str, Any]:
    names = store.wards()
    kiosks = [k for k in store.kiosks(ward) if scope is None or k["ward"] in scope]
    alerts = store.alerts(ward=ward)
    last = store.last_events()
    return {"at": now().isoformat(timespec="seconds"), "wards": names,
            "kiosks": [kiosk_row(k, names, alerts, last.get((k["ward"], k["kiosk"]))) for k in kiosks]}


async def fleet_api(request: web.Request) -> web.Response:
    session = await require(request, VIEW_ROLES)
    ward = fleet_ward(request, session)
    data = await asyncio.to_thread(fleet_data, fleet_of(request), ward, session.user.scope())
    return web.json_response(data)


def _cell(value: Any, suffix: str = "") -> str:
    return "—" if value is None else f"{escape(str(value))}{suffix}"


def alerts_html(alerts: list[dict[str, Any]], csrf: str, may_ack: bool) -> str:
    parts = []
    for a in alerts:
        ack = (f'<div class="ack">Đã xác nhận: {escape(a["ack_by"])} lúc {escape(a["ack_at"])} — '
               f'{escape(a["ack_note"])}</div>') if a["ack_by"] else (
            f'<form method="post" action="/ops/alerts/{escape(a["id"])}/ack" class="ackform">'
            f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
            f'<input name="note" required maxlength="500" placeholder="Ghi chú" aria-label="Ghi chú xác nhận">'
            f'<button type="submit">Xác nhận</button></form>' if may_ack else "")
        parts.append(f'<div class="alert {escape(a["severity"])}" data-kind="{escape(a["kind"])}">'
                     f'<strong>{escape(a["name"])}</strong> ({escape(SEVERITY_NAMES.get(a["severity"], ""))}) '
                     f'{escape(a["detail"])} · từ {escape(a["raised_at"])}{ack}</div>')
    return "".join(parts) or '<span class="okstate">Bình thường</span>'


def last_cell(last: dict[str, Any] | None) -> str:
    if last is None:
        return "—"
    return f'{escape(last["type"])} #{last["seq"]}<br><small>{escape(ago(last["at"]))}</small>'


def fleet_rows_html(rows: list[dict[str, Any]], csrf: str, may_ack: bool) -> str:
    out = []
    for r in rows:
        cam = r["camera"]
        state = "Trực tuyến" if r["state"] == "online" else ("Ngoại tuyến" if r["state"] == "offline" else r["state"])
        link = f'/ops/{escape(r["ward"])}/{escape(r["kiosk"])}'
        out.append(
            f'<tr data-kiosk="{escape(r["ward"])}/{escape(r["kiosk"])}"><td>{escape(r["ward_name"])}<br>'
            f'<small>{escape(r["ward"])}</small></td><td><a href="{link}">{escape(r["kiosk"])}</a></td>'
            f'<td class="st-{escape(r["state"])}">{escape(state)}<br><small>{escape(r["since"])}</small></td>'
            f'<td>{_cell(r["boot"])}</td><td>{_cell(r["version"])}</td><td>{last_cell(r["last_event"])}</td>'
            f'<td>{_cell(r["backlog"])}<br><small>{_cell(r["oldest_unsent_age_s"], " s")}</small></td>'
            f'<td>{_cell(cam["state"])}<br><small>{_cell(cam["fps"], " fps")} · mất {_cell(cam["drops"])} · '
            f'lỗi {_cell(cam["faults"])}</small></td><td>{_cell(r["disk_free_mb"], " MB")}</td>'
            f'<td>{_cell(r["clock"])}</td><td>{_cell(r["call"])}</td><td>{_cell(r["queue_length"])}</td>'
            f'<td class="alerts">{alerts_html(r["alerts"], csrf, may_ack)}</td></tr>')
    return "".join(out) or '<tr><td colspan="13">Chưa ki-ốt nào gửi trạng thái.</td></tr>'


FLEET_HEAD = ["Phường/xã", "Ki-ốt", "Trạng thái", "Lần khởi động", "Phiên bản", "Sự kiện cuối", "Tồn / chờ lâu nhất",
              "Camera", "Đĩa trống", "Đồng hồ", "Cuộc gọi", "Người chờ", "Cảnh báo"]


async def fleet_page(request: web.Request) -> web.Response:
    session = await require(request, VIEW_ROLES)
    ward = fleet_ward(request, session)
    data = await asyncio.to_thread(fleet_data, fleet_of(request), ward, session.user.scope())
    may_ack = session.user.role in COMMAND_ROLES
    options = "".join(f'<option value="{escape(c)}"{" selected" if c == ward else ""}>{escape(n)} ({escape(c)})'
                      f'</option>' for c, n in data["wards"].items() if session.user.sees(c))
    th = "".join(f"<th>{escape(h)}</th>" for h in FLEET_HEAD)
    body = (f'<h1>Giám sát ki-ốt</h1><form class="filters" method="get" action="/ops">'
            f'<label>Phường/xã<select name="ward"><option value="">Tất cả</option>{options}</select></label>'
            f'<button type="submit">Lọc</button></form>'
            f'<p class="note">Tự cập nhật mỗi 5 giây · <span id="fresh">{escape(data["at"])}</span></p>'
            f'<table class="fleet" data-testid="fleet-live" data-ward="{escape(ward or "")}" '
            f'data-ack="{1 if may_ack else 0}"><thead><tr>{th}</tr></thead>'
            f'<tbody id="fleet-body">{fleet_rows_html(data["kiosks"], session.csrf, may_ack)}</tbody></table>'
            f'<script src="/static/fleet.js"></script>')
    return web.Response(text=html.page("Giám sát ki-ốt", body, session.user, session.csrf), content_type="text/html")


async def fleet_rows(request: web.Request) -> web.Response:
    """The table body alone, for the page's polling script (same HTML as the first render)."""
    session = await require(request, VIEW_ROLES)
    ward = fleet_ward(request, session)
    data = await asyncio.to_thread(fleet_data, fleet_of(request), ward, session.user.scope())
    return web.Response(text=fleet_rows_html(data["kiosks"], session.csrf, session.user.role in COMMAND_ROLES),
                        content_type="text/html")


async def posted(request: web.Request, session: Session) -> dict[str, str]:
    form = await request.post()
    if not csrf_ok(session, str(form.get("csrf", ""))):
        raise Forbidden("Phiên làm việc không hợp lệ (CSRF), hãy tải lại trang.")
    return {k: str(v) for k, v in form.items()}


async def acknowledge(request: web.Request) -> web.StreamResponse:
    session = await require(request, COMMAND_ROLES, "Chỉ vận hành và quản trị xác nhận cảnh báo.")
    form = await posted(request, session)
    await asyncio.to_thread(fleet_of(request).acknowledge, request.match_info["id"], session.user.name,
                            form.get("note", ""), now())
    back = request.headers.get("Referer", "")
    return see_other(back if back.startswith(("/ops", f"{request.scheme}://{request.host}/ops")) else "/ops")


def kiosk_params(request: web.Request, session: Session) -> tuple[str, str]:
    ward, kiosk = request.match_info["ward"], request.match_info["kiosk"]
    if not SEGMENT.match(ward) or not SEGMENT.match(kiosk):
        raise BadInput("Mã phường/xã hoặc ki-ốt không hợp lệ.")
    if not session.user.sees(ward):
        raise Forbidden(f"Tài khoản của bạn không được xem phường/xã {ward}.")
    return ward, kiosk


def chart(points: list[tuple[str, float]], label: str, unit: str) -> str:
    """An inline SVG line chart of one telemetry figure (server-side, no script)."""
    if len(points) < 2:
        return f'<figure><figcaption>{escape(label)}</figcaption><p class="note">Chưa đủ số liệu.</p></figure>'
    w, h, pad = 560, 160, 30
    top = max(v for _, v in points) or 1.0
    step = (w - 2 * pad) / (len(points) - 1)
    coords = " ".join(f"{pad + i * step:.1f},{h - pad - (h - 2 * pad) * v / top:.1f}"
                      for i, (_, v) in enumerate(points))
    return (f'<figure><figcaption>{escape(label)} (tối đa {top:g} {escape(unit)})</figcaption>'
            f'<svg class="line" role="img" aria-label="{escape(label)}" width="{w}" height="{h}" viewBox="0 0 {w} {h}">'
            f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" class="axis"/>'
            f'<polyline points="{coords}"/><text x="{pad}" y="{h - 8}">{escape(points[0][0][11:19])}</text>'
            f'<text x="{w - pad}" y="{h - 8}" text-anchor="end">{escape(points[-1][0][11:19])}</text></svg></figure>')


def series_of(series: list[dict[str, Any]], pick: Any) -> list[tuple[str, float]]:
    out = []
    for p in series:
        try:
            v = pick(p)
        except (AttributeError, TypeError, KeyError):
            continue
        if isinstance(v, int | float) and isinstance(p.get("at"), str):
            out.append((p["at"], float(v)))
    return out


def kiosk_data(db: Db, store: FleetStore, ward: str, kiosk: str, kind: str, page: int) -> dict[str, Any]:
    known = [k for k in store.kiosks(ward) if k["kiosk"] == kiosk]
    if not known:
        raise NotFound(f"Không có ki-ốt {kiosk} của phường/xã {ward}.")
    names = store.wards()
    params: list[Any] = [ward, kiosk]
    where = "ward = ? AND kiosk = ?"
    if kind:
        where += " AND type = ?"
        params.append(kind)
    events = db.query(f"SELECT seq, type, at FROM central_events WHERE {where} ORDER BY received_at DESC, seq DESC "
                      "LIMIT ? OFFSET ?", (*params, EVENTS_PAGE + 1, page * EVENTS_PAGE))
    types = [str(r[0]) for r in db.query("SELECT DISTINCT type FROM central_events WHERE ward = ? AND kiosk = ? "
                                         "ORDER BY type", (ward, kiosk))]
    last = store.last_events().get((ward, kiosk))
    return {"row": kiosk_row(known[0], names, store.alerts(ward=ward, kiosk=kiosk), last),
            "history": store.alerts(ward=ward, kiosk=kiosk, open_only=False, limit=50),
            "series": store.series(ward, kiosk), "events": events, "types": types,
            "commands": store.commands(ward, kiosk)}


async def kiosk_page(request: web.Request) -> web.Response:
    session = await require(request, VIEW_ROLES)
    ward, kiosk = kiosk_params(request, session)
    kind = request.query.get("type", "")
    if kind and not EVENT_TYPE.match(kind):
        raise BadInput("Loại sự kiện không hợp lệ.")
    try:
        page = min(max(int(request.query.get("page", "0")), 0), 10_000)
    except ValueError:
        raise BadInput("Số trang không hợp lệ.") from None
    d = await asyncio.to_thread(kiosk_data, central_of(request).db, fleet_of(request), ward, kiosk, kind, page)
    r, csrf = d["row"], session.csrf
    may_command = session.user.role in COMMAND_ROLES
    s = d["series"]
    charts = "".join([
        chart(series_of(s, lambda p: p["camera"]["fps"]), "Camera (khung hình/giây)", "fps"),
        chart(series_of(s, lambda p: p["backlog"]), "Sự kiện chưa gửi", "sự kiện"),
        chart(series_of(s, lambda p: p["queue_length"]), "Người đang chờ", "người"),
        chart(series_of(s, lambda p: p["disk_free_mb"]), "Đĩa trống", "MB"),
        chart(series_of(s, lambda p: p["cpu_percent"]), "CPU", "%")])
    head = "".join(f"<th>{escape(h)}</th>" for h in FLEET_HEAD)
    options = "".join(f'<option{" selected" if t == kind else ""}>{escape(t)}</option>' for t in d["types"])
    more = len(d["events"]) > EVENTS_PAGE
    base = f"/ops/{escape(ward)}/{escape(kiosk)}"
    qtype = f"&amp;type={escape(kind)}" if kind else ""
    newer = f'<a href="{base}?page={page - 1}{qtype}">← Mới hơn</a> ' if page else ""
    older = f'<a href="{base}?page={page + 1}{qtype}">Cũ hơn →</a>' if more else ""
    pager = newer + older
    commands_form = (
        f'<form method="post" action="{base}/command" class="filters" data-testid="command-form">'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}"><label>Lệnh<select name="name">'
        + "".join(f"<option>{c}</option>" for c in ("ping", "status", "queue-snapshot", "resync", "set"))
        + '</select></label><label>Tham số (JSON)<input name="args" value="{}" size="40"></label>'
        '<button class="primary" type="submit">Gửi lệnh</button></form>') if may_command else (
        '<p class="note">Tài khoản của bạn không được gửi lệnh tới ki-ốt.</p>')
    shown_id = request.query.get("cmd", "")
    cmd_rows = []
    for cid, who, at, name, args, reply, replied in d["commands"]:
        mark = ' class="shown"' if cid == shown_id else ""
        cmd_rows.append(f'<tr{mark} data-cmd="{escape(str(cid))}"><td>{escape(str(at))}</td>'
                        f'<td>{escape(str(who))}</td><td>{escape(str(name))}</td><td><code>{escape(str(args))}</code>'
                        f'</td><td><pre class="reply">{escape(pretty(reply))}</pre></td>'
                        f'<td>{escape(str(replied or "—"))}</td></tr>')
    history = "".join(f"<tr><td>{escape(ALERT_NAMES.get(a.kind, a.kind))}</td><td>{escape(a.severity)}</td>"
                      f"<td>{escape(a.detail)}</td><td>{escape(a.raised_at)}</td><td>{escape(a.cleared_at or '—')}</td>"
                      f"<td>{escape(a.ack_by or '—')} {escape(a.ack_note or '')}</td></tr>" for a in d["history"])
    body = (f'<p><a href="/ops">← Tất cả ki-ốt</a></p><h1>Ki-ốt {escape(kiosk)} — {escape(r["ward_name"])}</h1>'
            f'<table class="fleet"><thead><tr>{head}</tr></thead><tbody>{fleet_rows_html([r], csrf, may_command)}'
            f'</tbody></table><h2>Số liệu theo thời gian</h2><div class="charts">{charts}</div>'
            f'<h2>Lệnh từ xa</h2>{commands_form}<table data-testid="commands"><thead><tr><th>Lúc (UTC)</th>'
            f'<th>Người gửi</th><th>Lệnh</th><th>Tham số</th><th>Trả lời</th><th>Trả lời lúc</th></tr></thead>'
            f'<tbody>{"".join(cmd_rows) or "<tr><td colspan=6>Chưa có lệnh nào.</td></tr>"}</tbody></table>'
            f'<h2>Cảnh báo</h2><table><thead><tr><th>Loại</th><th>Mức</th><th>Chi tiết</th><th>Phát sinh</th>'
            f'<th>Hết</th><th>Xác nhận</th></tr></thead><tbody>{history}</tbody></table>'
            f'<h2>Sự kiện</h2><form class="filters" method="get" action="{base}"><label>Loại<select name="type">'
            f'<option value="">Tất cả</option>{options}</select></label><button type="submit">Lọc</button></form>'
            + html.table(["Số thứ tự", "Loại", "Thời điểm (UTC)"], d["events"][:EVENTS_PAGE], "kiosk-events")
            + f'<p class="pager">{pager}</p>')
    return web.Response(text=html.page(f"Ki-ốt {kiosk}", body, session.user, csrf), content_type="text/html")


def pretty(reply: Any) -> str:
    if reply is None:
        return "(đang chờ)"
    try:
        return json.dumps(json.loads(str(reply)), ensure_ascii=False, indent=1)[:4000]
    except ValueError:
        return str(reply)[:4000]


async def command(request: web.Request) -> web.StreamResponse:
    session = await require(request, COMMAND_ROLES, "Cán bộ và lãnh đạo không được gửi lệnh tới ki-ốt.")
    ward, kiosk = kiosk_params(request, session)
    form = await posted(request, session)
    try:
        args = json.loads(form.get("args") or "{}")
    except ValueError:
        raise BadInput("Tham số phải là JSON, ví dụ {\"name\": \"telemetry.interval\", \"value\": 30}.") from None
    if not isinstance(args, dict) or len(form.get("args", "")) > 2000:
        raise BadInput("Tham số phải là một đối tượng JSON ngắn.")
    watcher = request.app.get(WATCHER)
    if watcher is None:
        raise CentralError("Trung tâm chưa nối với máy chủ MQTT (central serve --broker).", code="no_broker")
    command_id, _ = await watcher.command(ward, kiosk, session.user.name, form.get("name", ""), args)
    return see_other(f"/ops/{ward}/{kiosk}?cmd={command_id}")


def install(app: web.Application, broker: str | None, root: str = "wards", sweep_every: float = 15.0) -> None:
    """Fleet tables, routes and (with a broker) the watcher task; called by build_app before serving."""
    db = app[CENTRAL].db
    ensure_fleet_schema(db)
    app[FLEET] = FleetStore(db)
    app.router.add_get("/ops", fleet_page)
    app.router.add_get("/ops/rows", fleet_rows)
    app.router.add_get("/api/fleet", fleet_api)
    app.router.add_post("/ops/alerts/{id}/ack", acknowledge)
    app.router.add_get("/ops/{ward}/{kiosk}", kiosk_page)
    app.router.add_post("/ops/{ward}/{kiosk}/command", command)
    if broker is None:
        return

    async def watch(app: web.Application) -> AsyncIterator[None]:
        own = await asyncio.to_thread(Db, app[CENTRAL].settings.db)  # its own connection: pages are not held up
        mqtt = CentralMqtt(broker, client_id=f"central-fleet-{secrets.token_hex(4)}")
        watcher = FleetWatcher(mqtt, FleetStore(own), root, sweep_every)
        app[WATCHER] = watcher
        stop = asyncio.Event()
        task = asyncio.create_task(watcher.run(stop), name="central-fleet")
        yield
        stop.set()
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.to_thread(own.close)

    app.cleanup_ctx.append(watch)
