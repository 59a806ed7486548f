"""An ID card shown to the camera starts a session on the kiosk screen, in real headless Chromium
through the real web server (issue #11 item 2): a masked greeting and a "Không phải tôi" button; the
ticket is linked to the card's keyed hash only inside that session, which the button, the idle
reset, a new card or the ticket ends. Nothing personal reaches the page beyond the masked greeting."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, Response, Route

from agent.checkin import privacy
from agent.checkin.service import CheckinService
from tests import checkin_samples as S
from tests.test_web_browser import ARTIFACTS, Stack, open_page

pytestmark = pytest.mark.browser


class Kiosk:
    def __init__(self, stack: Stack, checkin: CheckinService, key: bytes, page: Page) -> None:
        self.stack, self.checkin, self.key, self.page = stack, checkin, key, page

    async def card(self, text: str, name_masked: str) -> None:
        assert self.checkin.handle(text).accepted
        await self.page.wait_for_function(
            "(n) => !document.getElementById('identity').hidden && "
            "document.getElementById('identity-greet').textContent.includes(n)", arg=name_masked, timeout=3000)

    async def take(self) -> str:
        page = self.page
        await page.click("[data-group='ho-tich']")
        await page.click("[data-service='khai-sinh']")
        await page.locator("#priorities button").first.click()
        await page.wait_for_function("() => document.body.dataset.screen === 's-ticket'", timeout=6000)
        number = await page.inner_text("#t-number")
        return self.stack.core.queue.get(number).id

    def resident(self, ticket_id: str) -> str | None:
        row = self.stack.core.db.conn.execute("SELECT resident FROM tickets WHERE id=?", (ticket_id,)).fetchone()
        return None if row[0] is None else str(row[0])

    async def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        await self.page.screenshot(path=str(ARTIFACTS / f"checkin-{name}.png"))


@pytest.fixture
async def kiosk(tmp_path: Path, browser: Browser) -> AsyncIterator[Kiosk]:
    stack = Stack(tmp_path)
    key = privacy.load_or_create_key(tmp_path / "keys" / "privacy.key")
    checkin = CheckinService(stack.core, stack.core.settings.checkin, key, stack.core.queue.clock)
    stack.server.identities = checkin
    await stack.start()
    page = await open_page(browser, stack.url("/"))
    await page.wait_for_function("() => document.body.dataset.screen === 's-start'", timeout=10000)
    try:
        yield Kiosk(stack, checkin, key, page)
        assert not page.js_errors  # type: ignore[attr-defined]
    finally:
        await page.close()
        await stack.close()


async def test_card_then_ticket_is_linked(kiosk: Kiosk) -> None:
    await kiosk.card(S.ELDER, "T. T. Bích")
    text = await kiosk.page.inner_text("#identity")
    assert "•••4321" in text and "Mời ông/bà chọn dịch vụ" in text and "Không phải tôi" in text
    await kiosk.shot("greeting")
    await kiosk.page.click("[data-group='ho-tich']")
    await kiosk.page.click("[data-service='khai-sinh']")
    first = kiosk.page.locator("#priorities button").first
    assert (await first.inner_text()).startswith("Đề xuất: Người cao tuổi")
    await first.click()
    await kiosk.page.wait_for_function("() => document.body.dataset.screen === 's-ticket'", timeout=6000)
    ticket = kiosk.stack.core.queue.get(await kiosk.page.inner_text("#t-number"))
    assert ticket.priority == "cao-tuoi"
    assert kiosk.resident(ticket.id) == privacy.resident_ref(kiosk.key, S.ELDER_ID)
    assert await kiosk.page.locator("#identity").is_hidden()
    html = await kiosk.page.content()
    assert S.ELDER_ID not in html and S.ELDER_NAME not in html
    # The ticket ended the session: the next ticket is anonymous.
    await kiosk.page.click("#ticket-done")
    assert kiosk.resident(await kiosk.take()) is None


def ended(response: Response) -> bool:
    return "/api/checkin/session/" in response.url and response.request.method == "DELETE"


async def test_not_me_unlinks(kiosk: Kiosk) -> None:
    await kiosk.card(S.CARD, "N. V. An")
    async with kiosk.page.expect_response(ended, timeout=6000) as resp:
        await kiosk.page.click("#not-me")
    assert (await resp.value).status == 204
    await kiosk.page.wait_for_selector("#identity", state="hidden", timeout=6000)
    await kiosk.shot("not-me")
    assert kiosk.checkin.pending_identity() is None
    assert kiosk.resident(await kiosk.take()) is None


async def test_idle_reset_unlinks(kiosk: Kiosk) -> None:
    async def short_idle(route: Route) -> None:
        # The real server's answer, with the idle delay shortened (its setting's minimum is 10 s).
        response = await route.fetch()
        config = await response.json()
        config["idle_reset_seconds"] = 1
        await route.fulfill(response=response, json=config)

    await kiosk.page.route("**/api/services", short_idle)
    await kiosk.page.reload()
    await kiosk.page.wait_for_function("() => document.body.dataset.screen === 's-start'", timeout=10000)
    async with kiosk.page.expect_response(ended, timeout=10000):
        await kiosk.card(S.CARD, "N. V. An")  # then nobody touches the screen
    await kiosk.page.wait_for_selector("#identity", state="hidden", timeout=6000)
    assert kiosk.checkin.pending_identity() is None
    await kiosk.page.unroute("**/api/services")
    await kiosk.page.reload()  # back to the real idle delay before walking through the menus
    await kiosk.page.wait_for_function("() => document.body.dataset.screen === 's-start'", timeout=10000)
    assert kiosk.resident(await kiosk.take()) is None


async def test_second_card_replaces_the_first(kiosk: Kiosk) -> None:
    await kiosk.card(S.CARD, "N. V. An")
    await kiosk.card(S.ELDER, "T. T. Bích")
    await kiosk.shot("second-card")
    assert kiosk.resident(await kiosk.take()) == privacy.resident_ref(kiosk.key, S.ELDER_ID)


async def test_ticket_without_the_session_is_not_linked(kiosk: Kiosk) -> None:
    """Another client (or a screen that never claimed the session) cannot get a ticket linked."""
    kiosk.checkin.handle(S.CARD)
    await kiosk.page.wait_for_selector("#identity:not([hidden])", timeout=3000)
    issued = await kiosk.page.evaluate("() => WK.api('POST', '/api/tickets', {service: 'khai-sinh'})")
    assert kiosk.resident(issued["id"]) is None
    assert kiosk.checkin.pending_identity() is None  # and the ticket ended the session anyway
