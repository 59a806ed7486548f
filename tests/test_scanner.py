"""The real OpenCV path end to end: a video file with QR codes entering, staying, leaving → one
check-in per code, in order, through SharedCamera, the decoder pipeline and CheckinService."""

from __future__ import annotations

import asyncio
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.checkin import privacy
from agent.checkin.scanner import Scanner
from agent.checkin.service import CheckinService, Decision
from agent.clock import FakeClock
from agent.core import Core
from agent.settings import CheckinSettings, load_settings
from agent.store import events
from devices import imaging
from devices.camera import open_source
from devices.capture import SharedCamera
from devices.decoders import PipelineDecoder
from tests import checkin_samples as S
from tests.conftest import CATALOGUE

DOSSIER_B = "000.00.19.H56-241205-0002"


def write_scene(path: Path, timeline: list[tuple[str | None, int]], fps: float = 20.0) -> None:
    """Frames of a desk; each (payload, n) shows that code (or nothing) for n frames, moving slightly."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (640, 480))
    rng = np.random.default_rng(7)
    try:
        for payload, count in timeline:
            for i in range(count):
                frame = np.full((480, 640, 3), 200, np.uint8)
                frame = imaging.add_noise(frame, rng, 4.0)
                if payload is not None:
                    imaging.draw_qr(frame, payload, (320 + 2 * i, 240), 220)
                writer.write(frame)
    finally:
        writer.release()


@pytest.fixture
def core(tmp_path: Path, clock: FakeClock) -> Core:
    c = Core.open(load_settings(storage={"data_dir": tmp_path / "data"}, queue={"catalogue": CATALOGUE}), clock)
    yield c  # type: ignore[misc]
    c.close()


async def test_video_codes_one_checkin_each_in_order(tmp_path: Path, core: Core, clock: FakeClock) -> None:
    video = tmp_path / "desk.avi"
    # At 20 fps: nothing 0.5 s, dossier A 2 s (held still: one check-in), gap 1.5 s, ID card 2 s,
    # gap 1.5 s, dossier B 2 s, nothing 0.5 s.
    write_scene(video, [(None, 10), (S.DOSSIER, 40), (None, 30), (S.CARD, 40), (None, 30), (DOSSIER_B, 40),
                        (None, 10)])
    key = privacy.load_or_create_key(tmp_path / "data" / "privacy.key")
    checkin = CheckinService(core, CheckinSettings(), key, clock)  # type: ignore[call-arg]
    decisions: list[Decision] = []

    async def handle(text: str) -> None:
        decisions.append(checkin.handle(text))

    ended = asyncio.Event()
    camera = SharedCamera(open_source(f"file:{video}"), on_fault=lambda kind, detail: ended.set())
    scanner = Scanner(camera, PipelineDecoder(), handle, rate=10, debounce_s=1.0)
    stop = asyncio.Event()
    await camera.start()
    task = asyncio.create_task(scanner.run(stop))
    await asyncio.wait_for(ended.wait(), 30)  # the file played to its end
    stop.set()
    await task
    await camera.stop()
    assert [(d.kind, d.code) for d in decisions] == [("dossier", "ticket_issued"), ("id_card", "identified"),
                                                     ("dossier", "ticket_issued")]
    assert scanner.stats.debounced > 5  # the same codes were seen many times while held
    checkins = [e for e in events.since(core.db.conn, 0) if e.type.startswith("checkin.")]
    assert len(checkins) == 3
    numbers = [d.ticket["number"] for d in decisions if d.ticket]
    assert numbers == ["K001", "K002"]


def test_debounce_window() -> None:
    camera = SharedCamera(open_source("demo:"))
    now = [0.0]
    sc = Scanner(camera, PipelineDecoder(), lambda t: asyncio.sleep(0), debounce_s=5.0, clock=lambda: now[0])
    assert sc.fresh("A", 0.0)
    assert not sc.fresh("A", 4.0)
    assert not sc.fresh("A", 8.5)  # held in view: each sighting refreshes the window
    assert sc.fresh("B", 9.0)
    assert sc.fresh("A", 14.0)  # out of view for more than 5 s: a new scan
