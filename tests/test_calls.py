"""Video calls: two real aiortc peers through a real mosquitto on 127.0.0.1.

The kiosk sends the demo scene through SharedCamera; the officer decodes the QR code drawn into it,
which proves video flows end to end. Audio is a 440 Hz tone one way and 660 Hz the other.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp import web

from agent.calls import mjpeg
from agent.calls.officer_bot import AiortcOfficer, OfficerCall
from agent.calls.rtc import PeerConfig, new_mic_pcm_frames, restrict_host_addresses
from agent.calls.service import CallBusy, CallService
from agent.calls.signalling import CallTopics
from agent.settings import CallSettings
from agent.store import events as event_log
from agent.store.db import Database
from devices import audio
from devices.camera import open_source
from devices.capture import SharedCamera
from devices.decoders import ZxingDecoder
from tests.rtc_broker import AgentTransport, Broker

pytestmark = pytest.mark.timeout(60)

ROOT, WARD, KIOSK = "wards", "26734", "test-01"
PAYLOAD = "WARD-KIOSK-CALL-QR-42"
LOOPBACK = ["127.0.0.1"]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path).start()
    yield b
    b.kill()


class Rig:
    """A kiosk CallService and an aiortc officer on one broker."""

    def __init__(self, db: Database, broker: Broker, tmp_path: Path, **settings: Any) -> None:
        self.db = db
        self.broker = broker
        self.tmp = tmp_path
        self.settings = CallSettings(host_addresses=LOOPBACK, **settings)
        self.camera = SharedCamera(open_source("demo:?fps=15", demo_payloads=[PAYLOAD]))
        self.speaker = audio.WavFileSink(tmp_path / "speaker")
        self.transports: list[AgentTransport] = []
        self.officers: list[AiortcOfficer] = []
        self.service: CallService | None = None

    async def transport(self, name: str) -> AgentTransport:
        t = await AgentTransport(self.broker.port, client_id=name).connect()
        self.transports.append(t)
        return t

    async def start(self) -> CallService:
        restrict_host_addresses(LOOPBACK)
        await self.camera.start()
        self.service = CallService(
            db=self.db, settings=self.settings, topics=CallTopics(ROOT, WARD, KIOSK),
            transport=await self.transport("kiosk"), camera=self.camera,
            microphone=audio.SyntheticSource(tone_hz=440.0), speaker=self.speaker,
        )
        await self.service.start()
        return self.service

    async def officer(self, name: str) -> AiortcOfficer:
        officer = AiortcOfficer(await self.transport(name), root=ROOT, ward=WARD, name=name,
                                config=PeerConfig(heartbeat_interval=1.0, heartbeat_timeout=3.5),
                                microphone=audio.SyntheticSource(tone_hz=660.0))
        await officer.start()
        self.officers.append(officer)
        return officer

    async def close(self) -> None:
        if self.service is not None:
            await self.service.stop()
        for officer in self.officers:
            await officer.close()
        for t in self.transports:
            await t.close()
        await self.camera.stop()

    def events(self, prefix: str = "") -> list[event_log.Event]:
        return [e for e in event_log.since(self.db.conn, 0) if e.type.startswith(prefix)]


@pytest.fixture
async def rig(db: Database, broker: Broker, tmp_path: Path) -> AsyncIterator[Rig]:
    r = Rig(db, broker, tmp_path)
    yield r
    await r.close()


async def connect(rig: Rig, officer: AiortcOfficer, **start: str) -> tuple[str, OfficerCall]:
    assert rig.service is not None
    call_id = await rig.service.start_call(**start)
    ring = await officer.next_ring()
    assert ring.call == call_id and ring.kiosk == KIOSK
    officer_call = await officer.accept(ring)
    assert officer_call is not None
    info = await rig.service.wait_for(call_id, "connected", timeout=15)
    assert info["state"] == "connected", info
    return call_id, officer_call


def dominant_hz(pcm: np.ndarray[Any, Any], rate: int = 48_000) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(pcm.size)))
    return float(np.argmax(spectrum) * rate / pcm.size)


async def test_call_media_end_to_end_and_officer_hangup(rig: Rig) -> None:
    service = await rig.start()
    officer = await rig.officer("Cán bộ An")
    decoded: list[str] = []
    got_qr = asyncio.Event()
    audio_in: list[np.ndarray[Any, Any]] = []
    decoder = ZxingDecoder()

    call_id, officer_call = await connect(rig, officer, service="khai-sinh", ticket="A012")
    peer = officer_call.peer
    frames_seen = 0

    def on_video(frame: Any) -> None:
        nonlocal frames_seen
        frames_seen += 1
        if not got_qr.is_set() and frames_seen % 5 == 0:  # decode a sample: keep the loop responsive
            decoded.extend(d.text for d in decoder.decode(frame.to_ndarray(format="bgr24")))
            if PAYLOAD in decoded:
                got_qr.set()

    peer.on_video_frame = on_video
    peer.on_audio_frame = lambda f: audio_in.append(new_mic_pcm_frames(f))
    await asyncio.wait_for(got_qr.wait(), 15)

    # The officer heard the kiosk's 440 Hz microphone.
    heard = np.concatenate(audio_in[-25:])
    assert abs(dominant_hz(heard) - 440.0) < 15

    # The kiosk screen gets the officer's video as MJPEG.
    app = web.Application()
    app.router.add_get("/api/calls/{id}/video.mjpeg", mjpeg.handler(service))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/api/calls/{call_id}/video.mjpeg",
                                headers={"X-Call-Token": service.token(call_id)}) as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"].startswith("multipart/x-mixed-replace")
                body = b""
                while body.count(b"\xff\xd9") < 2:  # two whole JPEGs
                    body += await resp.content.read(65536)
                assert b"\xff\xd8" in body
            async with http.get(f"http://127.0.0.1:{port}/api/calls/nope/video.mjpeg") as resp:
                assert resp.status == 404
    finally:
        await runner.cleanup()

    # The kiosk's speaker played the officer's 660 Hz voice.
    kiosk_peer = service.peer(call_id)
    assert kiosk_peer is not None
    await asyncio.wait_for(kiosk_peer.remote_video.wait_newer(0), 5)
    assert rig.speaker.played, "200 ms clips are played as they fill; a second of call has passed"
    clip, rate = audio.read_wav(rig.speaker.played[-1].path)
    assert abs(dominant_hz(clip, rate) - 660.0) < 15

    await officer.hangup(officer_call)
    info = await service.wait_for(call_id, "ended", timeout=5)
    assert info["state"] == "ended" and info["ended_by"] == "officer" and info["reason"] == "hangup"
    types = [e.type for e in rig.events("call.")]
    assert types == ["call.requested", "call.answered", "call.ended"]
    requested, answered, ended = rig.events("call.")
    assert requested.data == {"call": call_id, "service": "khai-sinh", "ticket": "A012"}
    assert answered.data["officer"] == "Cán bộ An"
    assert ended.data["by"] == "officer" and ended.data["duration_seconds"] > 0


async def test_second_accept_is_taken_and_kiosk_hangup(rig: Rig) -> None:
    service = await rig.start()
    first = await rig.officer("officer-1")
    second = await rig.officer("officer-2")
    call_id = await service.start_call()
    ring1, ring2 = await first.next_ring(), await second.next_ring()
    won = await first.accept(ring1)
    lost = await second.accept(ring2)
    assert won is not None and lost is None
    assert any(m.get("type") == "taken" and m.get("session") == second.session for m in second.seen)
    with pytest.raises(CallBusy):
        await service.start_call()
    await service.wait_for(call_id, "connected", timeout=15)

    info = await service.hangup(call_id)
    assert info["state"] == "ended" and info["ended_by"] == "kiosk"
    hangup = await asyncio.wait_for(_until_type(won, "hangup"), 5)
    assert hangup["reason"] == "hangup"
    ended = rig.events("call.ended")[0]
    assert ended.data["by"] == "kiosk" and ended.data["officer"] == "officer-1"
    # The call is over: a new one may start.
    await service.hangup(await service.start_call(), "cancelled")


async def _until_type(call: OfficerCall, kind: str) -> dict[str, Any]:
    while True:
        message = await call.messages.get()
        if message.get("type") == kind:
            return message


async def test_ring_timeout_is_missed_with_callback(db: Database, broker: Broker, tmp_path: Path) -> None:
    r = Rig(db, broker, tmp_path, ring_timeout_seconds=1.5)
    try:
        service = await r.start()
        officer = await r.officer("late")
        call_id = await service.start_call(service="chung-thuc")
        await officer.next_ring()
        info = await service.wait_for(call_id, "missed", timeout=10)
        assert info["state"] == "missed" and info["reason"] == "ring_timeout"
        assert any(m.get("type") == "cancel" for m in officer.seen)
        missed = r.events("call.missed")
        assert len(missed) == 1 and missed[0].data["callback_offered"] is True
        assert not r.events("call.ended")

        service.leave_callback(call_id, ticket="B007")
        callback = r.events("feedback.submitted")
        assert callback[0].data == {"kind": "callback_request", "call": call_id, "service": "chung-thuc",
                                    "ticket": "B007"}
        with pytest.raises(Exception, match="gọi lại"):
            service.leave_callback(call_id)
    finally:
        await r.close()


async def test_broker_dies_mid_call_and_the_agent_carries_on(rig: Rig) -> None:
    service = await rig.start()
    officer = await rig.officer("officer")
    call_id, officer_call = await connect(rig, officer)
    rig.broker.kill()
    received = officer_call.peer.remote_video.received
    await officer_call.peer.remote_video.wait_newer(officer_call.peer.remote_video.version + 20, timeout=5)
    assert officer_call.peer.remote_video.received > received  # media is peer to peer
    assert service.state(call_id)["state"] == "connected"  # type: ignore[index]
    info = await service.hangup(call_id)
    assert info["state"] == "ended" and info["reason"] == "hangup"
    assert rig.events("call.ended")[0].data["by"] == "kiosk"


async def test_dead_officer_is_noticed_within_5_seconds(rig: Rig) -> None:
    service = await rig.start()
    officer = await rig.officer("officer")
    call_id, officer_call = await connect(rig, officer)
    await officer_call.peer.abandon()
    info = await service.wait_for(call_id, "ended", timeout=5.0)
    assert info["state"] == "ended" and info["reason"] == "peer_lost" and info["ended_by"] == "system"
    assert rig.events("call.ended")[0].data["reason"] == "peer_lost"
