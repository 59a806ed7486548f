"""Mobile ticket (#12 item 7): the ticket QR as central's public URL, read back by the kiosk's decoder,
and central's `/t/<token>` page (waiting position, counter when called, freshness) on SQLite and
PostgreSQL, in Debian Chromium with screenshots."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser

from agent.checkin.codes import parse_ticket, ticket_payload, ticket_token
from agent.ids import uuid7
from agent.printing.layout import qr_image
from central.summarizer import Summarizer
from central.web.app import WebSettings, build_app
from central.web.ticket import ticket_id
from devices.decoders import ZxingDecoder
from tests.browsers import browser, require_chromium
from tests.central_helpers import Kiosk, open_db, target_for

__all__ = ["browser"]
require_chromium()
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
BASE = "https://mot-cua.example.gov.vn/ve"
DAY = "2026-11-30"
IDS = [uuid7(1_790_000_000_000 + n) for n in range(4)]  # time-ordered, like the kiosk's


def test_payload_is_a_url_the_kiosk_reads_back() -> None:
    tid = IDS[0]
    url = ticket_payload(tid, BASE + "/")
    assert url == f"{BASE}/t/{ticket_token(tid)}" and len(ticket_token(tid)) == 22
    assert parse_ticket(url) == tid and ticket_id(ticket_token(tid)) == tid  # central decodes the same id
    assert parse_ticket(ticket_payload(tid)) == tid and ticket_payload(tid).startswith("WKT1:")
    for junk in (f"{BASE}/x/{ticket_token(tid)}", f"{BASE}/t/{ticket_token(tid)[:-1]}", f"{url}?a=1",
                 "ftp://h/t/" + ticket_token(tid), f"{BASE}/t/{'!' * 22}"):
        assert parse_ticket(junk) is None, junk
    # The printed ticket's QR (whole-dot modules, 80 mm paper) decodes to the URL and back to the ticket.
    image = qr_image(url, 576).convert("RGB")
    [found] = ZxingDecoder().decode(np.asarray(image, dtype=np.uint8))
    assert found.text == url and parse_ticket(found.text) == tid


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    for t in target_for(request.param, tmp_path):
        db = open_db(t)
        k = Kiosk(db, "26734", "k-01")
        for n, tid in enumerate(IDS):
            k.event("ticket.issued", f"{DAY}T02:0{n}:00.000Z", source="kiosk", day=DAY, ticket=tid,
                    number=f"A00{n}", service="khai-sinh", priority=None)
        k.event("ticket.called", f"{DAY}T02:10:00.000Z", counter=3, waited_seconds=600, reason="next",
                ticket=IDS[0], number="A000", service="khai-sinh", priority=None)
        k.event("ticket.done", f"{DAY}T02:20:00.000Z", counter=3, service_seconds=600,
                ticket=IDS[1], number="A001", service="khai-sinh", priority=None)
        Summarizer(db).run_once()
        db.close()
        yield t


@pytest.fixture
async def server(target: str) -> AsyncIterator[str]:
    settings = WebSettings(db=target, summarise_every=3600, today=lambda: date.fromisoformat(DAY))  # type: ignore[call-arg]
    srv = TestServer(build_app(settings), host="127.0.0.1")
    await srv.start_server()
    yield str(srv.make_url("")).rstrip("/")
    await srv.close()


@pytest.mark.browser
async def test_ticket_page_live_position_counter_and_freshness(server: str, browser: Browser) -> None:
    page = await browser.new_page(viewport={"width": 390, "height": 844})
    ARTIFACTS.mkdir(exist_ok=True)
    expected = {IDS[0]: "mời đến quầy số 3", IDS[2]: "còn 0 người trước", IDS[3]: "còn 1 người trước",
                IDS[1]: "Đã phục vụ xong"}
    for n, (tid, text) in enumerate(expected.items()):
        response = await page.goto(f"{server}/t/{ticket_token(tid)}")
        assert response is not None and response.status == 200
        assert text in await page.get_by_test_id("state").inner_text()
        assert "cập nhật lúc 09:20:00 ngày 30/11/2026" in await page.get_by_test_id("fresh").inner_text()
        await page.screenshot(path=str(ARTIFACTS / f"central-ticket-{n}.png"), full_page=True)
    for bad in ("A" * 22, "short", ticket_token(uuid7(1))):
        response = await page.goto(f"{server}/t/{bad}")
        assert response is not None and response.status == 404, bad
    await page.close()
