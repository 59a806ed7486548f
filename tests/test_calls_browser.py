"""The officer console in a real headless Chromium answers a kiosk call (MQTT over WebSockets)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import async_playwright

from agent.calls.web import call_routes, officer_routes
from agent.settings import CallSettings, DeviceSettings, Settings
from agent.store.db import Database
from tests.browsers import CHROMIUM, MEDIA_ARGS
from tests.rtc_broker import Broker
from tests.test_calls import KIOSK, WARD, Rig

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

CHROMIUM_ARGS = MEDIA_ARGS


async def serve(*routes: list[web.RouteDef]) -> tuple[web.AppRunner, int]:
    app = web.Application()
    for group in routes:
        app.add_routes(group)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, int(runner.addresses[0][1])


@pytest.fixture
async def kiosk(db: Database, tmp_path: Path) -> AsyncIterator[Rig]:
    broker = Broker(tmp_path).start()
    rig = Rig(db, broker, tmp_path)
    try:
        yield rig
    finally:
        await rig.close()
        broker.kill()


async def test_chromium_officer_accepts_and_sees_the_kiosk(kiosk: Rig) -> None:
    service = await kiosk.start()
    settings = Settings(device=DeviceSettings(ward=WARD, kiosk=KIOSK),  # type: ignore[call-arg]
                        call=CallSettings(host_addresses=["127.0.0.1"]))
    runner, port = await serve(officer_routes(settings), call_routes(service))
    # ?password= and ?officer= are ignored: the officer types a personal account's password, and the
    # name the kiosk sees is that account's user name.
    query = (f"broker=ws://127.0.0.1:{kiosk.broker.ws_port}&wards={WARD}&username=can-bo-b"
             "&password=leaked&officer=Someone%20else&loopback=1")
    # A stale ring somebody left retained on the broker must not ring a console that connects later.
    stale = json.dumps({"type": "ring", "call": "stale0000000000", "at": "2026-01-01T00:00:00Z"})
    subprocess.run(["mosquitto_pub", "-p", str(kiosk.broker.port), "-q", "1", "-r",
                    "-t", f"wards/{WARD}/{KIOSK}/rtc/stale0000000000/kiosk", "-m", stale], check=True, timeout=10)
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page = await browser.new_page()
                await page.goto(f"http://127.0.0.1:{port}/officer?{query}")
                await page.wait_for_function("document.getElementById('username').value === 'can-bo-b'")
                assert await page.input_value("#password") == ""
                assert await page.locator("#officer").count() == 0
                await page.fill("#password", "officer-b-password")
                await page.click("#connect")
                await page.wait_for_function("window.officerState && window.officerState.status === 'connected'",
                                             timeout=15_000)
                call_id = await service.start_call(service="khai-sinh")
                button = page.locator(f"button.accept[data-call='{call_id}']")
                await button.wait_for(timeout=10_000)
                # The live ring came after the retained one would have: only the live one rings.
                assert await page.locator("button.accept[data-call='stale0000000000']").count() == 0
                await button.click(timeout=10_000)
                info = await service.wait_for(call_id, "connected", timeout=20)
                assert info["state"] == "connected" and info["officer"] == "can-bo-b"
                await page.wait_for_function("document.getElementById('remote').videoWidth > 0", timeout=15_000)
                timing: Any = await page.evaluate("window.officerState.timings[0]")
                assert timing["setupMs"] is not None and timing["setupMs"] > 0
                ended = await service.hangup(call_id)
                assert ended["ended_by"] == "kiosk"
                await page.wait_for_function("window.officerState.callState === 'ended'", timeout=10_000)
            finally:
                await browser.close()
    finally:
        await runner.cleanup()
    assert [e.type for e in kiosk.events("call.")] == ["call.requested", "call.answered", "call.ended"]
