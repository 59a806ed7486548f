"""The officer's frame rate (issue #11 item 1): CameraTrack paces against a schedule, so capture jitter
does not drop every other frame. A real SharedCamera whose source delivers frames at a fixed rate with
seeded jitter (as a USB camera and its driver do); counts are in frames, not wall time."""

from __future__ import annotations

import random
import time
from typing import Any

import numpy as np
import pytest

from agent.calls.rtc import CameraTrack
from devices.capture import SharedCamera

pytestmark = pytest.mark.timeout(60)


class JitteredSource:
    """Frames due every 1/fps, each delivered up to ±30 % of a period late or early."""

    name = "jittered"
    pace_fps: float | None = None  # read() blocks like a real camera

    def __init__(self, fps: float, seed: int) -> None:
        self._period = 1.0 / fps
        self._rng = random.Random(seed)
        self._t0 = 0.0
        self._k = 0
        self._image = np.full((240, 320, 3), 128, np.uint8)

    def open(self) -> None:
        self._t0 = time.monotonic()
        self._k = 0

    def close(self) -> None:
        pass

    def read(self) -> np.ndarray[Any, Any]:
        self._k += 1
        due = self._t0 + self._period * (self._k + self._rng.uniform(-0.3, 0.3))
        time.sleep(max(0.0, due - time.monotonic()))  # the capture thread, not the event loop
        return self._image


@pytest.mark.parametrize("camera_fps", [15.0, 25.0, 30.0])
async def test_jittered_camera_keeps_the_frame_rate(camera_fps: float) -> None:
    max_fps = 15.0
    camera = SharedCamera(JitteredSource(camera_fps, seed=int(camera_fps)))
    await camera.start()
    subscriber = camera.subscribe("call")
    track = CameraTrack(subscriber, max_width=320, max_height=240, max_fps=max_fps)
    try:
        await track.recv()  # the first frame starts the schedule
        first_index = camera.latest.index if camera.latest else 0
        offered0 = subscriber.received
        last_index = first_index
        while last_index - first_index < int(camera_fps * 3):  # three seconds of camera frames
            await track.recv()
            last_index = camera.latest.index if camera.latest else 0
    finally:
        track.stop()
        await camera.stop()
    # Frames the subscriber skipped because this loop was slow (a loaded test machine) were never
    # offered to the pacing: count against what was offered.
    offered = subscriber.received - offered0
    expected = min(offered, (last_index - first_index) * min(1.0, max_fps / camera_fps))
    sent = track.sent - 1
    assert sent >= 0.9 * expected, (camera_fps, sent, expected)
    assert sent <= 1.05 * expected + 1, (camera_fps, sent, expected)  # and never above max_fps
