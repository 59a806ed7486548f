"""Central web in Debian's headless Chromium: login, every page, role refusals, a report downloaded and
read back with openpyxl; screenshots on a laptop and a 1920×1080 wall screen in test-artifacts/."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from openpyxl import load_workbook
from playwright.async_api import Browser, Page

from central.summarizer import Summarizer
from central.users import add_user
from central.web.app import WebSettings, build_app
from tests.browsers import browser, require_chromium
from tests.central_helpers import Kiosk, open_db, target_for
from tests.test_central_kpi import DAY, WARD, first_half, second_half

__all__ = ["browser"]
require_chromium()
pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
PASSWORD = "mật khẩu đủ dài 2"
VIEWPORTS = {"laptop": {"width": 1366, "height": 768}, "wall": {"width": 1920, "height": 1080}}


@pytest.fixture
def target(tmp_path: Path) -> Iterator[str]:
    for t in target_for("sqlite", tmp_path):
        db = open_db(t)
        first_half(k := Kiosk(db, WARD, "k-01"))
        second_half(k)
        Summarizer(db).run_once()
        add_user(db, "admin", "admin", [], PASSWORD)
        add_user(db, "lead", "leader", [], PASSWORD)
        add_user(db, "off", "officer", [WARD], PASSWORD)
        db.close()
        yield t


@pytest.fixture
async def server(target: str) -> AsyncIterator[str]:
    settings = WebSettings(db=target, summarise_every=3600, today=lambda: date.fromisoformat(DAY))
    srv = TestServer(build_app(settings), host="127.0.0.1")
    await srv.start_server()
    yield str(srv.make_url("")).rstrip("/")
    await srv.close()


async def login(page: Page, base: str, name: str) -> None:
    await page.goto(f"{base}/kpi")
    assert page.url.endswith("/login")
    await page.get_by_label("Tên đăng nhập").fill(name)
    await page.get_by_label("Mật khẩu").fill(PASSWORD)
    await page.get_by_role("button", name="Đăng nhập").click()
    await page.wait_for_url("**/kpi")


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"central-{name}.png"), full_page=True)


@pytest.mark.parametrize("screen", list(VIEWPORTS))
async def test_pages_and_screenshots(server: str, browser: Browser, screen: str) -> None:
    page = await browser.new_page(viewport=VIEWPORTS[screen])  # type: ignore[arg-type]
    external: list[str] = []
    page.on("request", lambda r: external.append(r.url) if not r.url.startswith(server) else None)
    await page.goto(f"{server}/login")
    await shot(page, f"login-{screen}")
    await page.get_by_label("Tên đăng nhập").fill("admin")
    await page.get_by_label("Mật khẩu").fill("sai mật khẩu rồi")
    await page.get_by_role("button", name="Đăng nhập").click()
    await page.get_by_role("alert").filter(has_text="không đúng").wait_for()
    await login(page, server, "admin")
    await shot(page, f"kpi-city-{screen}")
    await page.goto(f"{server}/kpi?ward={WARD}&from={DAY}&to={DAY}")
    assert await page.get_by_test_id("cards").inner_text() != ""
    assert "15,0 phút" in await page.get_by_test_id("cards").inner_text()  # the fixture's wait p50
    await shot(page, f"kpi-ward-{screen}")
    for path, name in [("/reports", "reports"), ("/fleet", "fleet"), (f"/events?ward={WARD}", "events"),
                       (f"/public/{WARD}", "public")]:
        response = await page.goto(f"{server}{path}")
        assert response is not None and response.status == 200, path
        await shot(page, f"{name}-{screen}")
    assert external == []  # nothing from a CDN or anywhere else


async def test_roles_refused_and_report_download(server: str, browser: Browser, tmp_path: Path) -> None:
    context = await browser.new_context(accept_downloads=True)
    page = await context.new_page()
    await login(page, server, "lead")
    response = await page.goto(f"{server}/events?ward={WARD}")
    assert response is not None and response.status == 403
    assert "không xem sự kiện" in await page.get_by_role("alert").inner_text()
    await shot(page, "leader-refused")
    await page.goto(f"{server}/reports")
    await page.get_by_label("Phường/xã").select_option(WARD)
    await page.get_by_label("Tháng").fill(DAY[:7])
    async with page.expect_download() as info:
        await page.get_by_role("button", name="Tải báo cáo").click()
    download = await info.value
    path = tmp_path / download.suggested_filename
    await download.save_as(path)
    assert path.name == f"bao-cao-{WARD}-{DAY[:7]}.xlsx"
    sheet = load_workbook(path).active
    assert sheet is not None
    total = next(r for r in sheet.iter_rows(values_only=True) if r[1] == "Tổng cộng")
    assert total[:6] == (WARD, "Tổng cộng", 10, 8, 1, 1)
    await page.get_by_role("button", name="Đăng xuất").click()
    await page.wait_for_url("**/login")
    await login(page, server, "off")
    response = await page.goto(f"{server}/fleet")
    assert response is not None and response.status == 403
    await shot(page, "officer-refused")
    await context.close()
