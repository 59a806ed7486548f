"""The two ends of a call across NAT, each run inside its namespace by tests/test_calls_nat.py and
bench/nat_call.py (``ip netns exec NS python -m tests.nat_peers ROLE ...``). One JSON object per line
on stdout: ``{"ready": true}`` once listening, then one per call.

kiosk: the kiosk's CallService (aiortc, TURN REST credentials made per call from the shared secret) on
the ward LAN; reports the ICE pair it selected. officer: an aiortc officer or the officer console in
Debian Chromium (Playwright) on the city network; reports accept → first frame.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from agent.calls import rtc
from agent.calls.officer_bot import AiortcOfficer
from agent.calls.service import CallService
from agent.calls.signalling import CallTopics
from agent.settings import CallSettings, IceServer
from agent.store.db import Database
from devices.camera import open_source
from devices.capture import SharedCamera
from tests import netns
from tests.rtc_broker import AgentTransport

WARD, KIOSK, ROOT = "26734", "nat-01", "wards"
TURN_URL = f"turn:{netns.CENTRAL_WAN}:3478?transport=udp"


# What the console saw when a call did not come up (the log says why: gathering, ICE, the kiosk's hangup).
STATE_JS = """() => { const s = window.officerState, c = s.current, pc = c && c.pc;
  return JSON.stringify({status: s.status, callState: s.callState, lastError: s.lastError || null,
    gathering: pc ? pc.iceGatheringState : null, ice: pc ? pc.iceConnectionState : null,
    local: pc && pc.localDescription
      ? pc.localDescription.sdp.split("\\n").filter(l => l.startsWith("a=candidate")) : null}); }"""


def say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def selected_pair(pc: Any) -> dict[str, str] | None:
    """The nominated ICE pair of an aiortc peer connection (aioice internals, read only)."""
    for transceiver in pc.getTransceivers():
        dtls = transceiver.sender.transport
        connection = getattr(getattr(dtls, "transport", None), "_connection", None)
        nominated = getattr(connection, "_nominated", None) or {}
        for pair in nominated.values():
            local, remote = pair.local_candidate, pair.remote_candidate
            return {"local": local.type, "local_addr": f"{local.host}:{local.port}",
                    "remote": remote.type, "remote_addr": f"{remote.host}:{remote.port}"}
    return None


async def kiosk(calls: int, secret_file: Path | None, timeout: float) -> None:
    rtc.restrict_host_addresses([netns.WARD_IP])
    servers = [] if secret_file is None else [IceServer(urls=[TURN_URL], secret_file=secret_file)]  # type: ignore[call-arg]
    settings = CallSettings(host_addresses=[netns.WARD_IP], ice_servers=servers)  # type: ignore[call-arg]
    camera = SharedCamera(open_source("demo:?fps=15"))
    await camera.start()  # the daemon starts it at boot; calls only subscribe
    transport = await AgentTransport(1883, client_id="kiosk", host=netns.CENTRAL_WAN, timeout=10).connect()
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(Path(tmp) / "kiosk.db").open()
        service = CallService(db=db, settings=settings, topics=CallTopics(ROOT, WARD, KIOSK),
                              transport=transport, camera=camera)
        await service.start()
        say(ready=True)
        try:
            for _ in range(calls):
                call_id = await service.start_call()
                info = await service.wait_for(call_id, "connected", timeout=timeout)
                peer = service.peer(call_id)
                pair = None if peer is None else selected_pair(peer._pc)
                ended = await service.wait_for(call_id, "ended", timeout=timeout)
                say(call=call_id, state=info["state"], pair=pair, ended_by=ended.get("ended_by"))
        finally:
            await service.stop()
            await transport.close()
            await camera.stop()
            db.close()


async def officer_aiortc(calls: int, timeout: float, hold: float) -> None:
    transport = await AgentTransport(1883, client_id="officer", host=netns.CENTRAL_CITY, timeout=10).connect()
    officer = AiortcOfficer(transport, root=ROOT, ward=WARD, name="can-bo-nat")
    await officer.start()
    say(ready=True)
    try:
        for _ in range(calls):
            ring = await officer.next_ring(timeout=timeout)
            accepted = time.monotonic()
            call = await officer.accept(ring, timeout=timeout)
            assert call is not None, "another officer took the call"
            first: asyncio.Future[float] = asyncio.get_running_loop().create_future()

            def on_frame(_frame: Any, first: asyncio.Future[float] = first) -> None:
                if not first.done():
                    first.set_result(time.monotonic())

            call.peer.on_video_frame = on_frame
            setup_ms = (await asyncio.wait_for(first, timeout) - accepted) * 1000
            await asyncio.sleep(hold)
            pair = selected_pair(call.peer._pc)
            await officer.hangup(call)
            say(call=ring.call, setup_ms=setup_ms, pair=pair)
    finally:
        await officer.close()
        await transport.close()


async def first_frame(page: Any, i: int, timeout: float) -> None:
    """Wait for call ``i``'s first frame; on the way, log each change of the console's call state."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        if await page.evaluate(f"(window.officerState.timings[{i}] || {{}}).setupMs != null"):
            return
        state = await page.evaluate(STATE_JS)
        if state != last:
            print("officer state:", state, file=sys.stderr, flush=True)
            last = state
        await asyncio.sleep(0.1)
    raise TimeoutError(f"call {i}: no first frame in {timeout:g} s")


async def officer_chromium(calls: int, timeout: float, hold: float) -> None:
    from aiohttp import web
    from playwright.async_api import async_playwright

    from agent.calls.web import officer_routes
    from agent.settings import DeviceSettings, Settings
    from tests.browsers import CHROMIUM, MEDIA_ARGS

    app = web.Application()
    app.add_routes(officer_routes(Settings(device=DeviceSettings(ward=WARD, kiosk=KIOSK))))  # type: ignore[call-arg]
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    ms = int(timeout * 1000)
    try:
        async with async_playwright() as pw:
            # Without --allow-loopback-in-peer-connection: a TURN allocation from 127.0.0.1 never completes
            # and the console waits for complete gathering (no trickle).
            args = [a for a in MEDIA_ARGS if a != "--allow-loopback-in-peer-connection"]
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
            page = await browser.new_page()
            page.on("console", lambda m: print(f"console {m.type}: {m.text}", file=sys.stderr, flush=True))
            await page.goto(f"http://127.0.0.1:{port}/officer?broker=ws://{netns.CENTRAL_CITY}:9001"
                            f"&wards={WARD}&username=can-bo-nat")
            await page.fill("#password", "nat")
            await page.click("#connect")
            await page.wait_for_function("window.officerState && window.officerState.status === 'connected'",
                                         timeout=ms)
            say(ready=True)
            for i in range(calls):
                button = page.locator("button.accept").first
                await button.wait_for(timeout=ms)
                call_id = await button.get_attribute("data-call")
                await button.click(timeout=ms)
                await first_frame(page, i, timeout)
                setup_ms = float(await page.evaluate(f"window.officerState.timings[{i}].setupMs"))
                await asyncio.sleep(hold)
                await page.click("#hangup", timeout=ms)
                await page.wait_for_function("window.officerState.callState === 'ended'", timeout=ms)
                say(call=call_id, setup_ms=setup_ms)
            await browser.close()
    finally:
        await runner.cleanup()


async def allocate(secret: str, expires_in: int) -> None:
    """One TURN allocation on central with credentials made as the kiosk makes them; prints the outcome."""
    import asyncio as aio

    from aioice import turn as aioice_turn

    from agent.calls import turn

    username, password = turn.rest_credentials(secret, "probe",
                                               int(time.time()) + expires_in)
    try:
        transport, _ = await aio.wait_for(aioice_turn.create_turn_endpoint(
            aio.DatagramProtocol, (netns.CENTRAL_WAN, 3478), username, password), 10)
    except Exception as exc:  # noqa: BLE001 - the outcome is the output
        say(allocated=False, error=type(exc).__name__ + ": " + str(exc)[:200])
        return
    say(allocated=True, relay=list(transport.get_extra_info("sockname")))
    transport.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=("kiosk", "aiortc", "chromium", "allocate"))
    parser.add_argument("--expires-in", type=int, default=300, help="allocate: credential lifetime (s).")
    parser.add_argument("--calls", type=int, default=1)
    parser.add_argument("--secret-file", type=Path, help="TURN shared secret; none: no TURN (direct only).")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--hold", type=float, default=0.5, help="Seconds a call stays up after the first frame.")
    args = parser.parse_args()
    logging.basicConfig(level=os.environ.get("NAT_PEERS_LOG", "INFO"), stream=sys.stderr)
    if args.role == "kiosk":
        asyncio.run(kiosk(args.calls, args.secret_file, args.timeout))
    elif args.role == "allocate":
        asyncio.run(allocate(args.secret_file.read_text(encoding="utf-8").strip(), args.expires_in))
    elif args.role == "aiortc":
        asyncio.run(officer_aiortc(args.calls, args.timeout, args.hold))
    else:
        asyncio.run(officer_chromium(args.calls, args.timeout, args.hold))


if __name__ == "__main__":
    sys.exit(main())
