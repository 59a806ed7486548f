"""An ID card shown to the camera, then a ticket taken by touch, in real headless Chromium: the kiosk
greets the resident, offers the priority the card makes them eligible for, and links the ticket to the
card's keyed hash (nothing personal reaches the page)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser

from agent.checkin import privacy
from agent.checkin.service import CheckinService
from tests import checkin_samples as S
from tests.test_web_browser import Stack, open_page

pytestmark = pytest.mark.browser


async def test_id_card_then_ticket_by_touch(tmp_path: Path, browser: Browser) -> None:
    stack = Stack(tmp_path)
    key = privacy.load_or_create_key(tmp_path / "data" / "privacy.key")
    checkin = CheckinService(stack.core, stack.core.settings.checkin, key, stack.core.queue.clock)
    stack.server.identities = checkin
    await stack.start()
    page = await open_page(browser, stack.url("/"))
    try:
        await page.wait_for_function("() => document.body.dataset.screen === 's-start'", timeout=5000)
        decision = checkin.handle(S.ELDER)
        assert decision.accepted and decision.display["suggested_priority"] == "cao-tuoi"
        await page.wait_for_selector("#checkin:not([hidden])", timeout=2000)
        assert "Mời ông/bà chọn dịch vụ" in await page.inner_text("#checkin")
        await page.click("[data-group='ho-tich']")
        await page.click("[data-service='khai-sinh']")
        first = page.locator("#priorities button").first
        assert (await first.inner_text()).startswith("Đề xuất: Người cao tuổi")
        await first.click()
        await page.wait_for_function("() => document.body.dataset.screen === 's-ticket'", timeout=2000)
        number = await page.inner_text("#t-number")
        ticket = stack.core.queue.get(number)
        assert ticket.priority == "cao-tuoi"
        row = stack.core.db.conn.execute("SELECT resident FROM tickets WHERE id=?", (ticket.id,)).fetchone()
        assert row[0] == privacy.resident_ref(key, S.ELDER_ID)
        html = await page.content()
        assert S.ELDER_ID not in html and S.ELDER_NAME not in html
        assert not page.js_errors  # type: ignore[attr-defined]
        # The identity is used once: the next resident's ticket is anonymous.
        nxt = stack.core.queue.take("khai-sinh")
        assert nxt.ticket.id != ticket.id and checkin.pending_identity() is None
    finally:
        await page.close()
        await stack.close()
