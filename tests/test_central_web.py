"""Central web over real HTTP on 127.0.0.1: login, sessions, CSRF, throttling, roles, bad filters,
KPI JSON and the public page, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestClient, TestServer

from central.db import Db
from central.sessions import Limits
from central.summarizer import Summarizer
from central.users import add_user
from central.web.app import WebSettings, build_app
from tests.central_helpers import Kiosk, open_db, target_for
from tests.test_central_kpi import DAY, WARD, first_half, second_half

PASSWORD = "mật khẩu đủ dài 1"
PRIVATE = "0912345678 Nguyễn Văn Riêng"


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    for t in target_for(request.param, tmp_path):
        db = open_db(t)
        k = Kiosk(db, WARD, "k-01")
        first_half(k)
        second_half(k)
        k.event("feedback.submitted", f"{DAY}T07:00:00.000Z", feedback="f9", kind="phan-anh", text=PRIVATE,
                has_phone=True)
        Kiosk(db, "26737", "k-02").event("ticket.issued", f"{DAY}T02:00:00.000Z", ticket="z", number="B001",
                                         service="khai-sinh", priority=None, source="kiosk", day=DAY)
        k.event("ticket.issued", f"{DAY}T08:00:00.000Z", ticket="w1", number="A050", service="khai-sinh",
                priority=None, source="kiosk", day=DAY)  # still waiting
        Summarizer(db).run_once()
        add_user(db, "admin", "admin", [], PASSWORD)
        add_user(db, "lead", "leader", [], PASSWORD)
        add_user(db, "off", "officer", [WARD], PASSWORD)
        db.close()
        yield t


async def client_for(target: str, **extra: object) -> TestClient[object, object]:
    settings = WebSettings(db=target, summarise_every=3600, limits=Limits(per_user=3, per_client=6),
                           today=lambda: date.fromisoformat(DAY), **extra)  # type: ignore[arg-type]
    client: TestClient[object, object] = TestClient(TestServer(build_app(settings), host="127.0.0.1"))
    await client.start_server()
    return client


@pytest.fixture
async def client(target: str) -> AsyncIterator[TestClient[object, object]]:
    c = await client_for(target)
    yield c
    await c.close()


async def login_token(c: TestClient[object, object]) -> str:
    page = await (await c.get("/login")).text()
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found
    return found.group(1)


async def login(c: TestClient[object, object], name: str, password: str = PASSWORD) -> int:
    token = await login_token(c)
    r = await c.post("/login", data={"csrf": token, "name": name, "password": password}, allow_redirects=False)
    return r.status


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found
    return found.group(1)


async def test_login_session_and_logout(client: TestClient[object, object]) -> None:
    r = await client.get("/kpi", allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/login"
    token = await login_token(client)
    r = await client.post("/login", data={"csrf": token, "name": "admin", "password": PASSWORD},
                          allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/kpi"
    cookie = r.headers["Set-Cookie"]
    assert "central_session=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Secure" not in cookie
    page = await (await client.get("/kpi")).text()
    assert "Chỉ số: Toàn thành phố" in page and "Phiếu đã cấp" in page
    # Logout without its CSRF token changes nothing; with it the session ends.
    assert (await client.post("/logout", data={"csrf": "forged"}, allow_redirects=False)).status == 403
    assert (await client.get("/kpi", allow_redirects=False)).status == 200
    r = await client.post("/logout", data={"csrf": csrf_of(page)}, allow_redirects=False)
    assert r.status == 303
    assert (await client.get("/kpi", allow_redirects=False)).status == 303


async def test_secure_cookie_behind_tls(target: str) -> None:
    c = await client_for(target, secure_cookies=True)
    try:
        # The client keeps Secure cookies for HTTPS only, so the cookie flags are checked as sent.
        r = await c.get("/login")
        assert "Secure" in r.headers["Set-Cookie"] and "HttpOnly" in r.headers["Set-Cookie"]
    finally:
        await c.close()


async def test_login_csrf_forged_cookie_and_throttle(client: TestClient[object, object], target: str) -> None:
    # No login CSRF token: refused, no session.
    r = await client.post("/login", data={"name": "admin", "password": PASSWORD}, allow_redirects=False)
    assert r.status == 403 and "central_session" not in r.headers.get("Set-Cookie", "")
    # A forged session cookie is no session.
    async with ClientSession(cookies={"central_session": "x" * 43}) as raw:
        r2 = await raw.get(client.make_url("/kpi"), allow_redirects=False)
        assert r2.status == 303
    # Wrong passwords: 401 three times, then the account pauses even for the right password.
    for _ in range(3):
        assert await login(client, "off", "sai mật khẩu rồi") == 401
    assert await login(client, "off") == 429
    assert await login(client, "admin") == 303  # another account from the same client still logs in
    for name in ("nobody1", "nobody2", "nobody3"):
        assert await login(client, name, "sai mật khẩu rồi") == 401
    assert await login(client, "lead") == 429  # six failures from this client: the client pauses


async def test_roles_and_bad_filters(client: TestClient[object, object]) -> None:
    assert await login(client, "lead") == 303
    r = await client.get(f"/events?ward={WARD}")
    assert r.status == 403 and "không xem sự kiện của từng người dân" in await r.text()
    assert (await client.get(f"/kpi?ward={WARD}")).status == 200
    client.session.cookie_jar.clear()
    assert await login(client, "off") == 303
    r = await client.get("/fleet")
    assert r.status == 403 and "Chỉ vận hành" in await r.text()
    assert (await client.get("/events?ward=26737")).status == 403  # outside its wards
    events = await client.get(f"/events?ward={WARD}")
    assert events.status == 200 and PRIVATE not in await events.text()
    for query, status, words in [("ward=99999", 403, "không được xem"), ("ward=abc", 400, "5 chữ số"),
                                 ("ward=" + "1" * 600, 400, "quá dài"), ("from=2026-02-30", 400, "không tồn tại"),
                                 ("from=2020-01-01&to=2026-11-30", 400, "Khoảng ngày"),
                                 ("from=2026-11-30&to=2026-11-01", 400, "Khoảng ngày")]:
        r = await client.get(f"/kpi?{query}")
        assert r.status == status and words in await r.text(), query
    client.session.cookie_jar.clear()
    assert await login(client, "admin") == 303
    r = await client.get("/kpi?ward=99999")
    assert r.status == 404 and "Không có phường/xã 99999" in await r.text()
    fleet = await (await client.get("/fleet")).text()
    assert "k-01" in fleet and "k-02" in fleet


async def test_kpi_json_matches_the_fixture(client: TestClient[object, object]) -> None:
    assert await login(client, "off") == 303
    r = await client.get(f"/api/kpi?ward={WARD}&from={DAY}&to={DAY}")
    body = await r.json()
    total = body["total"]
    assert (total["issued"], total["wait_p50"], total["wait_p90"]) == (11, 900, 3000)
    assert total["service_level"] == {"15": 5 / 11, "30": 7 / 11}  # the waiting ticket counts as not called
    assert body["counts"]["feedback"]["count"] == 2
    bad = await client.get("/api/kpi?ward=26737")
    assert bad.status == 403 and (await bad.json())["code"] == "forbidden"
    # The officer's city view is its own wards only.
    mine = await (await client.get(f"/api/kpi?from={DAY}&to={DAY}")).json()
    assert [w["key"] for w in mine["by_ward"]] == [WARD]


async def test_public_page_aggregates_only(client: TestClient[object, object]) -> None:
    r = await client.get(f"/public/{WARD}")
    page = await r.text()
    assert r.status == 200 and "công khai chất lượng phục vụ" in page
    assert "<td>khai-sinh</td><td>1</td>" in page  # waiting now: the one ticket not called yet
    assert "19,2 phút" in page  # the month's average wait: 10380 s over the 9 tickets called
    assert "45,5 %" in page and "63,6 %" in page and "75,0 %" in page  # 5/11, 7/11 called in time; ratings
    assert PRIVATE not in page and "0912345678" not in page and "A001" not in page
    assert "<h3>Thang 5 mức</h3>" in page  # ratings as given, per scale
    assert "Dữ liệu mới nhất từ ki-ốt lúc" in page and "ki-ốt còn sự kiện chưa gửi đủ" in page
    assert (await client.get("/public/99999")).status == 404
    assert (await client.get("/public/abc")).status == 400


def test_reopen_keeps_schema(target: str) -> None:
    db = Db(target)
    try:
        from central.schema import VERSION, ensure_schema

        assert ensure_schema(db) == VERSION
        assert db.one("SELECT COUNT(*) FROM central_users") == (3,)
    finally:
        db.close()
