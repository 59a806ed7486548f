"""The officer console as the daemon serves it (`kiosk run`, with the web middleware and its CSP)
connects to the configured MQTT-over-WebSockets broker in a real Chromium, and to no other."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from agent.web.server import CSP, officer_csp
from tests.brokers import free_port, wait_port
from tests.browsers import ARGS, CHROMIUM
from tests.conftest import KIOSK
from tests.rtc_broker import Broker

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

WATCH_CSP = """document.addEventListener('securitypolicyviolation',
  e => { window.__csp = (window.__csp || []).concat([e.violatedDirective + ' ' + e.blockedURI]); });"""


async def test_daemon_officer_console_connects_to_the_configured_broker_only(kiosk_env: dict[str, str],
                                                                               tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker").start()
    other = Broker(tmp_path / "other").start()  # a broker the settings do not name
    web = free_port()
    env = {**kiosk_env, "KIOSK_MQTT__URL": broker.url, "KIOSK_WEB__PORT": str(web), "KIOSK_CAMERA__SOURCE": "demo:",
           "KIOSK_CALL__MICROPHONE": "tone:440", "KIOSK_CALL__SPEAKER": "null", "KIOSK_VOICE__SINK": "null",
           "KIOSK_CALL__HOST_ADDRESSES": '["127.0.0.1"]',
           "KIOSK_CALL__OFFICER_BROKER_URL": f"ws://127.0.0.1:{broker.ws_port}"}
    daemon = subprocess.Popen([*KIOSK, "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        await asyncio.to_thread(wait_port, web, 30, daemon)  # type: ignore[arg-type]
        base = f"http://127.0.0.1:{web}/officer?wards=26740&username=can-bo-a"
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                page = await browser.new_page()
                await page.add_init_script(WATCH_CSP)
                await page.goto(base)
                await page.fill("#password", "officer-password")  # the officer's own login (no URL password)
                await page.click("#connect")
                await page.wait_for_function("() => window.officerState && window.officerState.status === 'connected'",
                                             timeout=20_000)
                assert await page.evaluate("() => window.__csp || []") == []
                # Any other broker (a crafted link, an injected script) is blocked by the page's CSP.
                outcome = await page.evaluate("""port => new Promise(done => {
                    const ws = new WebSocket(`ws://127.0.0.1:${port}`, "mqtt");
                    ws.onopen = () => done("open"); ws.onerror = () => done("error"); })""", other.ws_port)
                blocked = await page.evaluate("() => window.__csp || []")
                assert outcome == "error" and any("connect-src" in b and str(other.ws_port) in b
                                                  for b in blocked), blocked
            finally:
                await browser.close()
        daemon.send_signal(signal.SIGTERM)
        _, err = await asyncio.to_thread(daemon.communicate, timeout=30)
        assert daemon.returncode == 0, err
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate()
        broker.stop()
        other.stop()


def test_officer_csp_names_the_broker_origin_only() -> None:
    assert "connect-src 'self' ws://127.0.0.1:9001;" in officer_csp("ws://127.0.0.1:9001/mqtt?x=1")
    assert "connect-src 'self' wss://broker.example:8884;" in officer_csp("wss://user:pw@broker.example:8884/")
    assert "user" not in officer_csp("wss://user:pw@broker.example:8884/")
    for bad in (None, "", "mqtt://127.0.0.1:1883", "ws://a.example;script-src *"):
        assert "connect-src 'self';" in officer_csp(bad), bad
    assert "ws:" not in CSP  # every other page may only talk to this server
