"""Video call figures, in one run, on 127.0.0.1 only (a mosquitto started for the run):

1. accept → first frame setup time (median, p95) with an aiortc officer and with headless Chromium;
2. glass-to-glass latency: the capture time is drawn into each frame as bit blocks and read back
   from the decoded frame on the officer's side (same machine, same clock);
3. kiosk CPU % at 640x480@15 fps with audio (CallService + SharedCamera + microphone) against a bare
   aiortc sender of the same frames and tone (ratio), each in its own process;
4. CPU of the MJPEG stream of the officer's video (same kiosk process, a viewer connected);
5. frames an aiortc officer receives in a window, with cameras at 15, 25 and 30 fps (``max_fps`` 15),
   as a ratio of min(camera fps, max_fps), with the glass-to-glass latency at each rate.

    .venv/bin/python bench/call.py [--calls 8] [--window 8] [--fps-only]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# bench/queue.py would shadow the standard library's queue module (aiortc imports it).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from aiohttp import ClientSession, web  # noqa: E402
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription  # noqa: E402
from aiortc.mediastreams import VideoStreamTrack  # noqa: E402

from agent.calls import rtc  # noqa: E402
from agent.calls.officer_bot import AiortcOfficer  # noqa: E402
from agent.calls.service import CallService  # noqa: E402
from agent.calls.signalling import CallTopics  # noqa: E402
from agent.calls.web import call_routes, officer_routes  # noqa: E402
from agent.settings import CallSettings, DeviceSettings, Settings  # noqa: E402
from agent.store.db import Database  # noqa: E402
from devices import audio  # noqa: E402
from devices.capture import SharedCamera  # noqa: E402
from tests.rtc_broker import AgentTransport, Broker  # noqa: E402
from tests.test_calls_browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

WARD, KIOSK, ROOTTOPIC = "26734", "bench-01", "wards"
W, H, FPS = 640, 480, 15.0
BITS, BLOCK = 24, 20
LOOPBACK = ["127.0.0.1"]


class StampedSource:
    """640x480 frames with the capture time (ms, monotonic) drawn as 24 bit blocks and their inverse."""

    name = "stamped"
    pace_fps: float | None = FPS

    def __init__(self, fps: float = FPS) -> None:
        self.pace_fps = fps
        ramp = np.linspace(60, 200, W, dtype=np.uint8)
        self._base = np.ascontiguousarray(np.broadcast_to(ramp[None, :, None], (H, W, 3)))

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def read(self) -> np.ndarray[Any, Any]:
        frame = self._base.copy()
        stamp = int(time.monotonic() * 1000) & ((1 << BITS) - 1)
        for i in range(BITS):
            bit = (stamp >> i) & 1
            x = i * BLOCK
            frame[0:BLOCK, x:x + BLOCK] = 255 if bit else 0
            frame[BLOCK:2 * BLOCK, x:x + BLOCK] = 0 if bit else 255
        return frame


def read_stamp(bgr: np.ndarray[Any, Any]) -> int | None:
    if bgr.shape[1] < BITS * BLOCK:
        return None
    c = BLOCK // 2
    value = 0
    for i in range(BITS):
        top = int(bgr[c, i * BLOCK + c].mean())
        bottom = int(bgr[BLOCK + c, i * BLOCK + c].mean())
        if (top > 128) == (bottom > 128):
            return None  # a block mid-change or blurred: skip this frame
        value |= (top > 128) << i
    return value


def latency_ms(bgr: np.ndarray[Any, Any]) -> float | None:
    stamp = read_stamp(bgr)
    if stamp is None:
        return None
    now = int(time.monotonic() * 1000) & ((1 << BITS) - 1)
    return float((now - stamp) % (1 << BITS))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- kiosk side (in process) ---------------------------------------------------------------------------


async def make_kiosk(db: Database, broker: Broker, fps: float = FPS,
                     ) -> tuple[CallService, SharedCamera, AgentTransport]:
    rtc.restrict_host_addresses(LOOPBACK)
    camera = SharedCamera(StampedSource(fps))
    await camera.start()
    transport = await AgentTransport(broker.port, client_id=f"kiosk-{time.monotonic_ns()}").connect()
    service = CallService(db=db, settings=CallSettings(host_addresses=LOOPBACK), topics=CallTopics(
        ROOTTOPIC, WARD, KIOSK), transport=transport, camera=camera,
        microphone=audio.SyntheticSource(tone_hz=440.0), speaker=audio.NullSink())
    await service.start()
    return service, camera, transport


async def bench_aiortc_officer(db: Database, broker: Broker, calls: int) -> tuple[list[float], list[float]]:
    service, camera, transport = await make_kiosk(db, broker)
    officer_t = await AgentTransport(broker.port, client_id="officer").connect()
    officer = AiortcOfficer(officer_t, root=ROOTTOPIC, ward=WARD, name="bench")
    await officer.start()
    setups: list[float] = []
    latencies: list[float] = []
    try:
        for i in range(calls):
            call_id = await service.start_call()
            ring = await officer.next_ring()
            accepted_at = time.monotonic()
            first = asyncio.get_running_loop().create_future()
            officer_call_task = asyncio.ensure_future(officer.accept(ring))
            officer_call = await officer_call_task
            assert officer_call is not None
            measure = i == calls - 1

            def on_frame(frame: Any, first: asyncio.Future[float] = first, measure: bool = measure) -> None:
                if not first.done():
                    first.set_result(time.monotonic())
                if measure:
                    ms = latency_ms(frame.to_ndarray(format="bgr24"))
                    if ms is not None:
                        latencies.append(ms)

            officer_call.peer.on_video_frame = on_frame
            setups.append((await asyncio.wait_for(first, 15) - accepted_at) * 1000)
            if measure:
                await asyncio.sleep(8)  # the latency sample: 8 s of frames
            await officer.hangup(officer_call)
            await service.wait_for(call_id, "ended", timeout=5)
    finally:
        await officer.close()
        await officer_t.close()
        await service.stop()
        await transport.close()
        await camera.stop()
    return setups, latencies


async def bench_frame_rate(db: Database, broker: Broker, camera_fps: float, window: float,
                           ) -> tuple[float, float, list[float]]:
    """(camera frames/s captured, frames/s the officer received, latencies ms) over ``window`` s."""
    service, camera, transport = await make_kiosk(db, broker, camera_fps)
    officer_t = await AgentTransport(broker.port, client_id=f"officer-{camera_fps:g}").connect()
    officer = AiortcOfficer(officer_t, root=ROOTTOPIC, ward=WARD, name="bench")
    await officer.start()
    try:
        call_id = await service.start_call()
        officer_call = await officer.accept(await officer.next_ring())
        assert officer_call is not None
        await service.wait_for(call_id, "connected", timeout=15)
        received: list[float] = []
        latencies: list[float] = []

        def on_frame(frame: Any) -> None:
            received.append(time.monotonic())
            ms = latency_ms(frame.to_ndarray(format="bgr24"))
            if ms is not None:
                latencies.append(ms)

        officer_call.peer.on_video_frame = on_frame
        await asyncio.sleep(2.0)  # let the encoder's bitrate settle before counting
        start_frames, start = camera.stats().frames_read, time.monotonic()
        count0 = len(received)
        await asyncio.sleep(window)
        elapsed = time.monotonic() - start
        captured = (camera.stats().frames_read - start_frames) / elapsed
        got = (len(received) - count0) / elapsed
        await officer.hangup(officer_call)
        await service.wait_for(call_id, "ended", timeout=5)
    finally:
        await officer.close()
        await officer_t.close()
        await service.stop()
        await transport.close()
        await camera.stop()
    return captured, got, latencies


async def bench_chromium(db: Database, broker: Broker, calls: int) -> list[float]:
    from playwright.async_api import async_playwright

    service, camera, transport = await make_kiosk(db, broker)
    settings = Settings(device=DeviceSettings(ward=WARD, kiosk=KIOSK),  # type: ignore[call-arg]
                        call=CallSettings(host_addresses=LOOPBACK))
    app = web.Application()
    app.add_routes(officer_routes(settings))
    app.add_routes(call_routes(service))
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    setups: list[float] = []
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = await browser.new_page()
            await page.goto(f"http://127.0.0.1:{port}/officer?broker=ws://127.0.0.1:{broker.ws_port}"
                            f"&wards={WARD}&username=bench&loopback=1")
            await page.fill("#password", "bench")
            await page.click("#connect")
            await page.wait_for_function("window.officerState && window.officerState.status === 'connected'")
            for i in range(calls):
                call_id = await service.start_call()
                await page.locator(f"button.accept[data-call='{call_id}']").click()
                await page.wait_for_function(f"window.officerState.timings[{i}] && "
                                             f"window.officerState.timings[{i}].setupMs !== null", timeout=15_000)
                setups.append(float(await page.evaluate(f"window.officerState.timings[{i}].setupMs")))
                await service.hangup(call_id)
                await page.wait_for_function("window.officerState.callState === 'ended'")
            await browser.close()
    finally:
        await runner.cleanup()
        await service.stop()
        await transport.close()
        await camera.stop()
    return setups


# --- CPU: the sender in its own process ------------------------------------------------------------------


class BareVideo(VideoStreamTrack):
    """The same frames, straight into aiortc: what any aiortc sender would do."""

    def __init__(self) -> None:
        super().__init__()
        self.source = StampedSource()

    async def recv(self) -> Any:
        import av

        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame.from_ndarray(self.source.read(), format="bgr24")
        frame.pts, frame.time_base = pts, time_base
        return frame


async def sender_process(mode: str, port: int, window: float) -> None:
    """Run the kiosk (mode kiosk) or a bare aiortc sender (mode bare); print CPU % over ``window``."""
    rtc.restrict_host_addresses(LOOPBACK)
    transport = await AgentTransport(port, client_id=f"{mode}-sender").connect()
    result: dict[str, Any] = {"mode": mode}
    if mode == "bare":
        sub = await transport.subscribe(f"bench/{mode}/answer")
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTrack(BareVideo())
        pc.addTrack(rtc.MicrophoneTrack(audio.SyntheticSource(tone_hz=440.0)))
        pc.createDataChannel("heartbeat", negotiated=True, id=0)
        await pc.setLocalDescription(await pc.createOffer())
        await transport.publish(f"bench/{mode}/offer", {"sdp": pc.localDescription.sdp})
        async for _topic, message in sub:
            await pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "answer"))
            break
        await asyncio.sleep(2)  # past the start-up
        t0, c0 = time.monotonic(), time.process_time()
        await asyncio.sleep(window)
        result["cpu_percent"] = 100 * (time.process_time() - c0) / (time.monotonic() - t0)
        await pc.close()
    else:
        with tempfile.TemporaryDirectory() as tmp:
            db = Database(Path(tmp) / "kiosk.db").open()
            broker = Broker(Path(tmp))
            broker.port = port
            service, camera, kiosk_t = await make_kiosk(db, broker)
            app = web.Application()
            app.add_routes(call_routes(service))
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            http_port = runner.addresses[0][1]
            call_id = await service.start_call()
            await service.wait_for(call_id, "connected", timeout=20)
            await asyncio.sleep(2)
            t0, c0 = time.monotonic(), time.process_time()
            await asyncio.sleep(window)
            result["cpu_percent"] = 100 * (time.process_time() - c0) / (time.monotonic() - t0)
            # Now a kiosk screen watching the officer's video as MJPEG.
            url = f"http://127.0.0.1:{http_port}/api/calls/{call_id}/video.mjpeg"
            async with ClientSession() as http, http.get(url) as resp:
                t0, c0 = time.monotonic(), time.process_time()
                received = 0
                while time.monotonic() - t0 < window:
                    received += len(await resp.content.read(65536))
                result["cpu_percent_with_mjpeg"] = 100 * (time.process_time() - c0) / (time.monotonic() - t0)
                result["mjpeg_kbps"] = received * 8 / 1000 / window
            peer = service.peer(call_id)
            result["camera_drops"] = 0 if peer is None else peer.camera_drops
            result["frames_sent"] = 0 if peer is None else peer.video_frames_sent
            await service.hangup(call_id)
            await runner.cleanup()
            await service.stop()
            await kiosk_t.close()
            await camera.stop()
            db.close()
    await transport.close()
    print(json.dumps(result), flush=True)


async def cpu_pair(broker: Broker, window: float) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for mode in ("bare", "kiosk"):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--sender", mode, "--port", str(broker.port), "--window", str(window),
            stdout=asyncio.subprocess.PIPE)
        transport = await AgentTransport(broker.port, client_id=f"officer-{mode}").connect()
        pc: Any = None
        officer: AiortcOfficer | None = None
        if mode == "bare":
            sub = await transport.subscribe(f"bench/{mode}/offer")
            async for _topic, message in sub:
                pc = rtc.OfficerPeer(rtc.PeerConfig(max_fps=FPS), make_frame=_officer_frame,
                                     microphone=audio.SyntheticSource(tone_hz=660.0))
                answer = await pc.answer(message["sdp"])
                await transport.publish(f"bench/{mode}/answer", {"sdp": answer})
                break
        else:
            officer = AiortcOfficer(transport, root=ROOTTOPIC, ward=WARD, name="cpu",
                                    config=rtc.PeerConfig(max_fps=FPS),
                                    microphone=audio.SyntheticSource(tone_hz=660.0))
            officer.config = rtc.PeerConfig(max_fps=FPS)
            await officer.start()
            ring = await officer.next_ring(timeout=30)
            call = await officer.accept(ring)
            assert call is not None
            pc = call.peer
        out, _ = await proc.communicate()
        results[mode] = json.loads(out.decode().strip().splitlines()[-1])
        if officer is not None:
            await officer.close()
        elif pc is not None:
            await pc.close()
        await transport.close()
    return results


def _officer_frame(index: int) -> np.ndarray[Any, Any]:
    frame = np.full((H, W, 3), 80, dtype=np.uint8)
    frame[:, (index * 8) % W:(index * 8) % W + 40] = 200
    return frame


async def frame_rates(window: float) -> None:
    max_fps = CallSettings().max_fps
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(Path(tmp)).start()
        db = Database(Path(tmp) / "kiosk.db").open()
        try:
            for camera_fps in (15.0, 25.0, 30.0):
                captured, got, lat = await bench_frame_rate(db, broker, camera_fps, window)
                target = min(captured, max_fps)
                print(f"camera {camera_fps:g} fps (captured {captured:.1f}/s), max_fps {max_fps:g}: officer "
                      f"received {got:.1f} fps, ratio {got / target:.2f} of {target:.1f}; latency median "
                      f"{statistics.median(lat) if lat else float('nan'):.0f} ms, p95 "
                      f"{pct(lat, 0.95) if lat else float('nan'):.0f} ms")
        finally:
            db.close()
            broker.kill()


async def main(calls: int, window: float) -> None:
    await frame_rates(window)
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(Path(tmp)).start()
        db = Database(Path(tmp) / "kiosk.db").open()
        try:
            aiortc_setup, latencies = await bench_aiortc_officer(db, broker, calls)
            chromium_setup = await bench_chromium(db, broker, calls)
            cpu = await cpu_pair(broker, window)
        finally:
            db.close()
            broker.kill()
    print(f"calls per officer kind: {calls}; 640x480 @ {FPS:g} fps, audio 48 kHz; all on 127.0.0.1")
    for name, values in (("aiortc officer", aiortc_setup), ("Chromium officer", chromium_setup)):
        print(f"setup accept→first frame, {name}: median {statistics.median(values):.0f} ms, "
              f"p95 {pct(values, 0.95):.0f} ms (min {min(values):.0f}, max {max(values):.0f})")
    if latencies:
        print(f"glass-to-glass latency (aiortc officer, {len(latencies)} frames): median "
              f"{statistics.median(latencies):.0f} ms, p95 {pct(latencies, 0.95):.0f} ms")
    bare, kiosk = cpu["bare"]["cpu_percent"], cpu["kiosk"]["cpu_percent"]
    print(f"sender CPU over {window:g} s: bare aiortc {bare:.1f} %, kiosk {kiosk:.1f} %, ratio {kiosk / bare:.2f}")
    print(f"kiosk camera drops {cpu['kiosk']['camera_drops']}, frames sent {cpu['kiosk']['frames_sent']}")
    mj = cpu["kiosk"]["cpu_percent_with_mjpeg"]
    print(f"MJPEG of the officer's video to one viewer: kiosk CPU {mj:.1f} % (+{mj - kiosk:.1f} points), "
          f"{cpu['kiosk']['mjpeg_kbps']:.0f} kbit/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=8)
    parser.add_argument("--window", type=float, default=8.0)
    parser.add_argument("--sender", choices=("bare", "kiosk"))
    parser.add_argument("--port", type=int)
    parser.add_argument("--fps-only", action="store_true", help="Only the frame rate per camera rate.")
    args = parser.parse_args()
    if args.fps_only:
        asyncio.run(frame_rates(args.window))
    elif args.sender:
        asyncio.run(sender_process(args.sender, args.port, args.window))
    else:
        asyncio.run(main(args.calls, args.window))
