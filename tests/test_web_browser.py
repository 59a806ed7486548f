"""The screens in real headless Chromium (Debian's /usr/bin/chromium) against the real agent parts.

Each test starts the core, the web server (127.0.0.1, free port) and the announcer (real espeak-ng,
WAV-file sink) itself. DOM changes are awaited with a timeout, never slept for.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.async_api import Browser, Page

from agent.core import Core
from agent.settings import load_settings
from agent.store import events
from agent.store.feed import EventFeed
from agent.voice.announcer import Announcer, AnnouncerConfig
from agent.voice.tts import EspeakSynth
from agent.voice.wiring import run_announcer
from agent.web.server import WebServer
from devices.audio import WavFileSink, read_wav
from tests.browsers import require_chromium
from tests.conftest import CATALOGUE, ROOT

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts"
PORTRAIT = {"width": 1080, "height": 1920}
LANDSCAPE = {"width": 1920, "height": 1080}
PIN = "4821"

require_chromium()


class Stack:
    def __init__(self, tmp_path: Path) -> None:
        settings = load_settings(storage={"data_dir": str(tmp_path / "data")},
                                 queue={"enforce_hours": False, "catalogue": str(CATALOGUE)},
                                 web={"counter_pins": {1: PIN, 2: "7730"}, "idle_reset_seconds": 30})
        self.core = Core.open(settings)
        self.feed = EventFeed(self.core.db, poll_interval=0.05)
        self.sink = WavFileSink(tmp_path / "audio")
        self.announcer = Announcer(self.sink, EspeakSynth(tmp_path / "voice-cache"),
                                   AnnouncerConfig(repeat=1, chime=True))
        self.server = WebServer(self.core, self.feed, host="127.0.0.1", port=0, announcer=self.announcer)
        self.stop = asyncio.Event()
        self.voice: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.server.start()
        self.voice = asyncio.create_task(run_announcer(self.core, self.feed, self.stop, self.announcer))
        await asyncio.sleep(0)  # the announcer reads the log's end before anything else happens

    async def close(self) -> None:
        self.stop.set()
        if self.voice is not None:
            await self.voice
        await self.server.stop()
        self.feed.close()
        self.core.close()

    def url(self, path: str) -> str:
        return self.server.url + path

    def events(self, type_: str) -> list[events.Event]:
        return [e for e in events.since(self.core.db.conn, 0, 100_000) if e.type == type_]


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    s = Stack(tmp_path)
    await s.start()
    yield s
    await s.close()


async def open_page(browser: Browser, url: str, viewport: dict[str, int] = PORTRAIT) -> Page:
    page = await browser.new_page(viewport=viewport)  # type: ignore[arg-type]
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" and "503" not in msg.text else None)
    await page.goto(url)
    page.js_errors = errors  # type: ignore[attr-defined]
    return page


async def wait_text(page: Page, selector: str, text: str, timeout: float = 1000) -> None:
    await page.wait_for_function("([s, t]) => document.querySelector(s)?.textContent === t",
                                 arg=[selector, text], timeout=timeout)


async def wait_waiting(board: Page, service: str, count: int, timeout: float = 1000) -> None:
    """The board lists only services with people waiting: absent means 0."""
    script = "([s, n]) => (document.querySelector(`[data-service='${s}'] b`)?.textContent ?? '0') === n"
    await board.wait_for_function(script, arg=[service, str(count)], timeout=timeout)


async def board_ready(browser: Browser, stack: Stack, viewport: dict[str, int] = LANDSCAPE) -> Page:
    board = await open_page(browser, stack.url("/board"), viewport)
    await board.wait_for_selector('[data-counter="1"]', timeout=5000)
    return board


async def login(browser: Browser, stack: Stack, counter: int = 1, viewport: dict[str, int] = LANDSCAPE,
                officer: str = "Nguyễn Thị Lan") -> Page:
    page = await open_page(browser, stack.url(f"/counter/{counter}"), viewport)
    await page.fill("#pin", PIN)
    await page.fill("#officer-name", officer)
    await page.click("#login button[type=submit]")
    await page.wait_for_selector("#desk:not([hidden])", timeout=5000)
    stored = await page.evaluate("() => Object.values(sessionStorage)")
    assert PIN not in stored and any(len(v) >= 32 for v in stored)  # a session token, not the PIN
    return page


async def take_by_touch(kiosk: Page, group: str = "ho-tich", service: str = "khai-sinh", priority: str = "") -> str:
    await kiosk.click(f'[data-group="{group}"]')
    await kiosk.click(f'[data-service="{service}"]')
    await kiosk.click(f'[data-priority="{priority}"]')
    await kiosk.wait_for_selector("#s-ticket:not([hidden])", timeout=5000)
    return await kiosk.text_content("#t-number") or ""


# --- the flows ------------------------------------------------------------------------------------


async def test_touch_ticket_updates_board_and_next_call_is_shown_and_announced(stack: Stack, browser: Browser) -> None:
    board = await board_ready(browser, stack)
    await wait_waiting(board, "khai-sinh", 0)
    assert await board.is_visible("#nobody")
    kiosk = await open_page(browser, stack.url("/"))
    number = await take_by_touch(kiosk)
    assert number == "A001"
    assert await kiosk.text_content("#t-ahead") == "0"
    assert await kiosk.evaluate("document.getElementById('t-qr').naturalWidth") > 0  # the QR image loaded
    await wait_waiting(board, "khai-sinh", 1)

    counter = await login(browser, stack)
    await counter.click('[data-action="next"]')
    await wait_text(board, '[data-counter="1"] .cnum', "A001")
    sentence = "Mời công dân có số thứ tự A001 đến quầy số 1"
    await wait_text(board, "#announce", sentence)
    assert "fresh" in (await board.get_attribute('[data-counter="1"]', "class") or "")
    await wait_waiting(board, "khai-sinh", 0)
    await wait_text(counter, "#cur-number", "A001")

    await asyncio.wait_for(stack.announcer.join(), 30)
    assert stack.announcer.last_text == sentence
    assert stack.announcer.last_callout is not None
    assert stack.announcer.last_callout.speech == "Mời công dân có số thứ tự a một, đến quầy số một."
    [clip] = stack.sink.played
    pcm, rate = read_wav(clip.path)
    assert pcm.size / rate > 2.0 and float(np.abs(pcm).max()) > 3000  # chime + sentence, audible
    assert board.js_errors == [] and kiosk.js_errors == [] and counter.js_errors == []  # type: ignore[attr-defined]


async def test_rating_feedback_checkin_and_call_button(stack: Stack, browser: Browser) -> None:
    counter = await login(browser, stack)
    kiosk = await open_page(browser, stack.url("/"))
    assert await take_by_touch(kiosk) == "A001"
    await kiosk.click("#ticket-done")
    for action in ("next", "start", "done"):
        await counter.click(f'[data-action="{action}"]')
        await counter.wait_for_function("() => document.getElementById('msg').className.includes('good')")
        await counter.evaluate("document.getElementById('msg').className = 'msg'")

    # Rating: type the ticket number on the keypad, pick a level.
    await kiosk.click("#go-rate")
    for key in "A1":
        await kiosk.click(f'[data-key="{key}"]')
    await kiosk.click("#rate-next")
    await kiosk.click('[data-score="5"]')
    await kiosk.wait_for_selector("#s-thanks:not([hidden])", timeout=5000)
    [rating] = stack.events("rating.submitted")
    assert rating.data["number"] == "A001" and rating.data["score"] == 5 and rating.data["counter"] == 1
    assert rating.data["officer"] == "Nguyễn Thị Lan"
    # A second rating of the same ticket is refused in words.
    await kiosk.click("#thanks-done")
    await kiosk.click("#go-rate")
    for key in "A001":
        await kiosk.click(f'[data-key="{key}"]')
    await kiosk.click("#rate-next")
    await kiosk.click('[data-score="1"]')
    await kiosk.wait_for_selector("#modal:not([hidden])", timeout=5000)
    assert "đã được đánh giá" in (await kiosk.text_content("#modal-text") or "")
    assert len(stack.events("rating.submitted")) == 1
    await kiosk.click("#modal-ok")

    # Feedback with script injection: stored as typed, shown as text, never run.
    await kiosk.click('#s-rate-score [data-back]')
    await kiosk.click('#s-rate-number [data-back]')
    await kiosk.click("#go-feedback")
    await kiosk.click('[data-kind="kien-nghi"]')
    evil = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> Xin sửa đèn hẻm 12'
    await kiosk.fill("#fb-text", evil)
    await kiosk.fill("#fb-phone", "0912 345 678")
    await kiosk.click("#fb-send")
    await kiosk.wait_for_selector("#s-thanks:not([hidden])", timeout=5000)
    assert await kiosk.text_content("#thanks-echo") == evil
    assert await kiosk.evaluate("window.__pwned === undefined")
    assert await kiosk.evaluate("document.querySelectorAll('#thanks-echo *').length") == 0
    [feedback] = stack.events("feedback.submitted")
    assert feedback.data["kind"] == "kien-nghi" and feedback.data["text"] == evil and feedback.data["has_phone"]
    await kiosk.click("#thanks-done")

    # "Gọi cán bộ" before the call feature exists: a polite sentence, not an error code.
    await kiosk.click("#call-officer")
    await kiosk.wait_for_selector("#modal:not([hidden])", timeout=5000)
    assert "chưa sẵn sàng" in (await kiosk.text_content("#modal-text") or "")
    await kiosk.click("#modal-ok")

    # A check-in result appears in the live feed: the kiosk shows its resident-facing message.
    message = "Mã QR đã hết hạn. Xin quý vị lấy số mới."
    with stack.core.db.write() as conn:
        events.append(conn, "checkin.rejected", {"reason": "expired", "message": message}, stack.core.queue.clock())
    await wait_text(kiosk, "#checkin-text", message)
    assert "bad" in (await kiosk.get_attribute("#checkin", "class") or "")


async def test_wrong_pin_is_refused_on_the_console(stack: Stack, browser: Browser) -> None:
    page = await open_page(browser, stack.url("/counter/1"))
    await page.fill("#pin", "0000")
    await page.click("#login button[type=submit]")
    await wait_text(page, "#login-msg", "Mã PIN của quầy không đúng.", timeout=5000)
    assert await page.is_hidden("#desk")


async def test_board_survives_an_agent_restart(stack: Stack, browser: Browser) -> None:
    stack.core.queue.take("khai-sinh")
    stack.core.queue.take("khai-sinh")
    board = await board_ready(browser, stack)
    await wait_waiting(board, "khai-sinh", 2, timeout=5000)
    port = stack.server.port
    await stack.server.stop()
    await board.wait_for_function("() => document.body.classList.contains('offline')", timeout=10_000)
    stack.core.queue.next(1)  # a call made while the board was cut off
    stack.server = WebServer(stack.core, stack.feed, host="127.0.0.1", port=port, announcer=stack.announcer)
    await stack.server.start()
    await board.wait_for_function("() => !document.body.classList.contains('offline')", timeout=15_000)
    await wait_text(board, '[data-counter="1"] .cnum', "A001", timeout=5000)  # caught up, not stale
    stack.core.queue.next(2)
    await wait_text(board, '[data-counter="2"] .cnum', "A002")
    await wait_waiting(board, "khai-sinh", 0)


# --- looks ------------------------------------------------------------------------------------------


async def check_layout(page: Page) -> None:
    """No sideways scrolling and every visible button at least 48 px in both directions."""
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    small = await page.evaluate("""() => [...document.querySelectorAll('button')].filter(b => {
        const r = b.getBoundingClientRect(); return r.width > 0 && (r.width < 48 || r.height < 48);
    }).map(b => b.textContent)""")
    assert small == []


async def shoot(page: Page, name: str) -> None:
    await check_layout(page)
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


@pytest.mark.parametrize(("orientation", "viewport"), [("portrait", PORTRAIT), ("landscape", LANDSCAPE)])
async def test_screenshots(stack: Stack, browser: Browser, orientation: str, viewport: dict[str, Any]) -> None:
    queue = stack.core.queue
    for service in ("khai-sinh", "khai-sinh", "ket-hon", "chung-thuc-ban-sao", "dang-ky-thuong-tru", "khai-sinh"):
        queue.take(service)
    queue.next(1)
    queue.next(2)
    queue.start(2)
    kiosk = await open_page(browser, stack.url("/"), viewport)
    await kiosk.wait_for_selector('[data-group="ho-tich"]')
    await shoot(kiosk, f"kiosk-start-{orientation}")
    await kiosk.click('[data-group="ho-tich"]')
    await shoot(kiosk, f"kiosk-services-{orientation}")
    await kiosk.click('[data-service="khai-sinh"]')
    await shoot(kiosk, f"kiosk-priority-{orientation}")
    await kiosk.click('[data-priority="cao-tuoi"]')
    await kiosk.wait_for_selector("#s-ticket:not([hidden])")
    await kiosk.wait_for_function("() => document.getElementById('t-qr').complete")
    await shoot(kiosk, f"kiosk-ticket-{orientation}")
    issued = await kiosk.text_content("#t-number") or ""
    await kiosk.click("#ticket-done")
    await kiosk.click("#go-rate")
    for key in issued:  # the screen rates the tickets it issued (it knows their ids)
        await kiosk.click(f'[data-key="{key}"]')
    await shoot(kiosk, f"kiosk-rate-number-{orientation}")
    await kiosk.click("#rate-next")
    await shoot(kiosk, f"kiosk-rate-score-{orientation}")
    await kiosk.click('[data-back="s-rate-number"]')
    await kiosk.click('#s-rate-number [data-back="s-start"]')
    await kiosk.click("#go-feedback")
    await kiosk.fill("#fb-text", "Đề nghị bố trí thêm ghế chờ cho người cao tuổi ở tầng trệt.")
    await shoot(kiosk, f"kiosk-feedback-{orientation}")
    with stack.core.db.write() as conn:
        events.append(conn, "checkin.accepted", {"message": "Đã xác nhận lịch hẹn. Mời quý vị chờ gọi số A003."},
                      queue.clock())
    await kiosk.wait_for_selector("#checkin:not([hidden])", timeout=5000)
    await shoot(kiosk, f"kiosk-checkin-{orientation}")

    board = await board_ready(browser, stack, viewport)
    await wait_text(board, '[data-counter="2"] .cnum', "A002", timeout=5000)
    queue.next(3)
    await wait_text(board, '[data-counter="3"] .cnum', "B001", timeout=5000)
    await shoot(board, f"board-{orientation}")
    counter = await login(browser, stack, 1, viewport)
    await wait_text(counter, "#cur-number", "A001", timeout=5000)
    await shoot(counter, f"counter-{orientation}")
    for page in (kiosk, board, counter):
        assert page.js_errors == []  # type: ignore[attr-defined]
