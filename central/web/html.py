"""HTML of central's pages: escaped f-strings, one stylesheet, inline SVG charts, nothing from a CDN."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from central.users import User


def page(title: str, body: str, user: User | None = None, csrf: str = "") -> str:
    nav = ""
    if user is not None:
        links = [("/kpi", "Chỉ số"), ("/reports", "Báo cáo")]
        if user.runs_fleet:
            links.append(("/fleet", "Ki-ốt"))
        items = "".join(f'<a href="{href}">{escape(text)}</a>' for href, text in links)
        nav = (f'<header><strong>Trung tâm một cửa</strong>{items}<span class="who">{escape(user.name)} '
               f'({escape(ROLE_NAMES.get(user.role, user.role))})</span>'
               f'<form method="post" action="/logout"><input type="hidden" name="csrf" value="{escape(csrf)}">'
               f'<button type="submit">Đăng xuất</button></form></header>')
    return (f'<!doctype html><html lang="vi"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><title>{escape(title)}</title>'
            f'<link rel="stylesheet" href="/static/central.css"></head><body>{nav}<main>{body}</main></body></html>')


ROLE_NAMES = {"admin": "quản trị", "ops": "vận hành", "officer": "cán bộ", "leader": "lãnh đạo"}


def number(value: float | int | None, digits: int = 0, suffix: str = "") -> str:
    if value is None:
        return "—"
    text = f"{value:,.{digits}f}".replace(",", "\u202f").replace(".", ",")
    return text + suffix


def minutes(seconds: float | int | None) -> str:
    return number(None if seconds is None else seconds / 60, 1, " phút")


def percent(share: float | None) -> str:
    return number(None if share is None else share * 100, 1, " %")


def card(value: str, label: str) -> str:
    return f'<div class="card"><div class="v">{escape(value)}</div><div class="l">{escape(label)}</div></div>'


def table(head: Sequence[str], rows: Sequence[Sequence[Any]], test_id: str = "") -> str:
    attr = f' data-testid="{escape(test_id)}"' if test_id else ""
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table{attr}><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def bars(points: Sequence[tuple[str, int]], label: str) -> str:
    """A small inline SVG bar chart (busiest hours)."""
    if not points:
        return '<p class="note">Chưa có dữ liệu.</p>'
    top = max(v for _, v in points) or 1
    width = 36 * len(points)
    parts = []
    for i, (name, v) in enumerate(points):
        h = round(120 * v / top)
        parts.append(f'<rect x="{i * 36 + 6}" y="{130 - h}" width="24" height="{h}"><title>{escape(name)}: {v}'
                     f'</title></rect><text x="{i * 36 + 18}" y="146" text-anchor="middle">{escape(name)}</text>')
    return (f'<svg class="bars" role="img" aria-label="{escape(label)}" width="{width}" height="150" '
            f'viewBox="0 0 {width} 150">{"".join(parts)}</svg>')


def error_page(status: int, message: str, user: User | None = None, csrf: str = "") -> str:
    return page("Lỗi", f'<h1>Không thực hiện được ({status})</h1><p class="error" role="alert">{escape(message)}</p>'
                f'<p><a href="/kpi">Về trang chỉ số</a></p>', user, csrf)
