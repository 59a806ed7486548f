"""City ops in Chromium against a real kiosk: `kiosk run` (images camera) → real mosquitto → central serve
with its fleet watcher. A camera fault raises an alert live, ops acknowledges it with a note; a ping is
sent and its reply shown and recorded; an officer's command is refused. Screenshots in test-artifacts/."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page

from central.db import Db
from central.fleet.store import FleetStore, ensure_fleet_schema
from central.users import add_user
from central.web.app import WebSettings, build_app
from tests.brokers import Broker
from tests.browsers import require_chromium
from tests.central_helpers import open_db
from tests.conftest import KIOSK, run_kiosk

require_chromium()
pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
PASSWORD = "mật khẩu đủ dài 3"
WARD, KIOSK_ID = "26734", "k-01"
WAIT_MS = 45_000


@pytest.fixture
def central_db(tmp_path: Path, kiosk_env: dict[str, str]) -> Iterator[str]:
    target = str(tmp_path / "central.db")
    db = open_db(target)
    add_user(db, "ops1", "ops", [], PASSWORD)
    add_user(db, "off1", "officer", [WARD], PASSWORD)
    db.close()
    wards = tmp_path / "wards.csv"
    wards.write_text(f"code,name\n{WARD},Phường Tân Định\n", encoding="utf-8")
    proc = run_kiosk(kiosk_env, "central", "wards", "import", str(wards), "--db", target)
    assert proc.returncode == 0 and "1 wards imported" in proc.stdout, proc.stderr
    yield target


@pytest.fixture
async def server(central_db: str, mosquitto: Broker) -> AsyncIterator[str]:
    settings = WebSettings(db=central_db, summarise_every=3600, broker=mosquitto.url)
    srv = TestServer(build_app(settings), host="127.0.0.1")
    await srv.start_server()
    yield str(srv.make_url("")).rstrip("/")
    await srv.close()


@pytest.fixture
def frames(tmp_path: Path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    assert cv2.imwrite(str(folder / "1.png"), np.full((240, 320, 3), 200, np.uint8))
    return folder


@pytest.fixture
def agent(kiosk_env: dict[str, str], mosquitto: Broker, frames: Path) -> Iterator[subprocess.Popen[str]]:
    env = {k: v for k, v in kiosk_env.items() if k != "JOURNAL_STREAM"}
    env.update({"KIOSK_CAMERA__SOURCE": f"images:{frames}?fps=5", "KIOSK_MQTT__URL": mosquitto.url,
                "KIOSK_DEVICE__WARD": WARD, "KIOSK_DEVICE__KIOSK": KIOSK_ID, "KIOSK_TELEMETRY__INTERVAL": "1",
                "KIOSK_VOICE__ENABLED": "false", "KIOSK_WEB__PORT": "0"})
    proc = subprocess.Popen([*KIOSK, "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    yield proc
    proc.terminate()
    try:
        proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


async def login(page: Page, base: str, name: str) -> None:
    await page.goto(f"{base}/login")
    await page.get_by_label("Tên đăng nhập").fill(name)
    await page.get_by_label("Mật khẩu").fill(PASSWORD)
    await page.get_by_role("button", name="Đăng nhập").click()
    await page.wait_for_url("**/kpi")


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"central-{name}.png"), full_page=True)


def commands_by(target: str, who: str) -> list[tuple[object, ...]]:
    db = Db(target)
    try:
        ensure_fleet_schema(db)
        return db.query("SELECT name, reply FROM central_commands WHERE who = ?", (who,))
    finally:
        db.close()


async def test_camera_fault_alert_acknowledged_and_commands(server: str, browser: Browser, central_db: str,
                                                           agent: subprocess.Popen[str], frames: Path) -> None:
    page = await browser.new_page(viewport={"width": 1920, "height": 1080})
    external: list[str] = []
    page.on("request", lambda r: external.append(r.url) if not r.url.startswith(server) else None)
    await login(page, server, "ops1")
    await page.goto(f"{server}/ops")
    row = page.locator(f'tr[data-kiosk="{WARD}/{KIOSK_ID}"]')
    await row.locator("td.st-online").wait_for(timeout=WAIT_MS)  # by the page's polling, no reload
    await row.get_by_text("Phường Tân Định").wait_for()
    await row.get_by_text("running").wait_for(timeout=WAIT_MS)
    # This box may raise its own (clock, disk) alerts; the camera is healthy so far.
    assert await row.locator('.alert[data-kind="camera_fault"]').count() == 0, await row.inner_text()
    await shot(page, "fleet-ok")

    shutil.rmtree(frames)  # the camera's source disappears: a real fault in the real agent
    alert = row.locator('.alert[data-kind="camera_fault"]')
    await alert.wait_for(timeout=WAIT_MS)
    assert "nghiêm trọng" in await alert.inner_text()
    await alert.get_by_label("Ghi chú xác nhận").fill("Đã báo kỹ thuật viên phường")
    await alert.get_by_role("button", name="Xác nhận").click()
    await page.wait_for_url("**/ops")
    acked = page.locator(f'tr[data-kiosk="{WARD}/{KIOSK_ID}"] .alert[data-kind="camera_fault"]')
    await acked.get_by_text("Đã xác nhận: ops1").wait_for()
    assert "Đã báo kỹ thuật viên phường" in await acked.inner_text()
    await shot(page, "fleet-alert-acked")

    await page.goto(f"{server}/ops/{WARD}/{KIOSK_ID}")
    await page.get_by_label("Lệnh").select_option("ping")
    await page.get_by_role("button", name="Gửi lệnh").click()
    await page.wait_for_url("**cmd=*")
    shown = page.locator("tr.shown")
    assert "pong" in await shown.locator("pre.reply").inner_text()
    assert "ops1" in await shown.inner_text()
    await page.get_by_label("Lệnh").select_option("queue-snapshot")
    await page.get_by_role("button", name="Gửi lệnh").click()
    await page.wait_for_url("**cmd=*")
    assert '"ok": true' in await page.locator("tr.shown pre.reply").inner_text()
    await page.locator("svg.line").first.wait_for()  # telemetry charts drawn from the stored series
    await shot(page, "kiosk")
    assert sorted(n for n, _ in commands_by(central_db, "ops1")) == ["ping", "queue-snapshot"]
    assert all(r is not None and '"ok": true' in str(r) for _, r in commands_by(central_db, "ops1"))
    assert external == []

    officer = await browser.new_page(viewport={"width": 1366, "height": 768})
    await login(officer, server, "off1")
    await officer.goto(f"{server}/ops/{WARD}/{KIOSK_ID}")
    await officer.get_by_text("không được gửi lệnh").wait_for()
    assert await officer.get_by_role("button", name="Gửi lệnh").count() == 0
    csrf = await officer.locator("header input[name=csrf]").get_attribute("value")
    refused = await officer.request.post(f"{server}/ops/{WARD}/{KIOSK_ID}/command",
                                         form={"csrf": csrf or "", "name": "ping", "args": "{}"})
    assert refused.status == 403
    await shot(officer, "kiosk-officer")
    assert commands_by(central_db, "off1") == []


def test_wards_import_refuses_bad_rows(tmp_path: Path, kiosk_env: dict[str, str]) -> None:
    target = str(tmp_path / "c.db")
    bad = tmp_path / "bad.csv"
    bad.write_text("26734,Phường Tân Định\n26735\n", encoding="utf-8")
    proc = run_kiosk(kiosk_env, "central", "wards", "import", str(bad), "--db", target)
    assert proc.returncode != 0 and "Dòng 2" in proc.stderr
    listed = run_kiosk(kiosk_env, "central", "wards", "list", "--db", target, "--json")
    assert listed.returncode == 0 and listed.stdout.strip() == "{}"
    db = Db(target)
    try:
        assert FleetStore(db).wards() == {}
    finally:
        db.close()
