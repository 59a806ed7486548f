"""Camera sources and the shared capture thread, through the real OpenCV path on generated files."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.errors import ConfigError
from devices import imaging
from devices.camera import (
    CameraSpecError,
    DemoCamera,
    FileCamera,
    FrameSource,
    ImageFolderCamera,
    OpenCVCamera,
    open_source,
)
from devices.capture import FAULT_ENDED, FAULT_READ, Frame, SharedCamera
from devices.decoders import PipelineDecoder
from devices.demo_scene import DemoScene

PAYLOADS = ["VE:A042", "LICH-HEN:7F3K9Q", "001099012345|123456789|Nguyễn Văn An|01011990|Nam"]
WAIT = 10.0  # generous upper bound for awaited events on a busy 2-core machine; never a sleep


def qr_frame(payload: str, width: int = 320, height: int = 240) -> imaging.Image:
    frame = np.full((height, width, 3), 200, dtype=np.uint8)
    imaging.draw_qr(frame, payload, (width // 2, height // 2), min(width, height) - 40)
    return frame


def write_video(path: Path, payloads: list[str], frames_each: int = 4, fps: float = 50.0) -> int:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (320, 240))
    assert writer.isOpened()
    count = 0
    for payload in payloads:
        frame = qr_frame(payload)
        for _ in range(frames_each):
            writer.write(frame)
            count += 1
    writer.release()
    return count


class CountingSource:
    """Delegates to a real source and counts how often it is opened."""

    def __init__(self, inner: FrameSource) -> None:
        self.inner = inner
        self.name = inner.name
        self.opens = 0

    @property
    def pace_fps(self) -> float | None:
        return self.inner.pace_fps

    def open(self) -> None:
        self.opens += 1
        self.inner.open()

    def read(self) -> imaging.Image | None:
        return self.inner.read()

    def close(self) -> None:
        self.inner.close()


# -- setting strings ----------------------------------------------------------------------------------------


def test_setting_strings_choose_the_source_kind(tmp_path: Path) -> None:
    assert isinstance(open_source("v4l2:/dev/video0"), OpenCVCamera)
    assert isinstance(open_source("v4l2:0"), OpenCVCamera)
    stream = open_source("rtsp://admin:secret@192.0.2.10:554/stream1")
    assert isinstance(stream, OpenCVCamera)
    assert "secret" not in stream.name and "admin" not in stream.name
    assert isinstance(open_source("https://cam.example/mjpg"), OpenCVCamera)
    looped = open_source(f"file:{tmp_path / 'a.avi'}?loop=1")
    assert isinstance(looped, FileCamera) and looped.loop
    assert isinstance(open_source(f"images:{tmp_path}?fps=2"), ImageFolderCamera)
    assert isinstance(open_source("demo:", demo_payloads=PAYLOADS), DemoCamera)


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "/dev/video0",
        "usb:0",
        "v4l2:",
        "v4l2:video0",
        "file:",
        "file:x.avi?loop=yes",
        "file:x.avi?speed=2",
        "images:",
        "images:d?fps=0",
        "demo:x",
        "rtsp://",
        "http:/nohost",
    ],
)
def test_bad_setting_strings_are_config_errors(spec: str) -> None:
    with pytest.raises(CameraSpecError) as info:
        open_source(spec)
    assert isinstance(info.value, ConfigError)
    assert info.value.code == "camera_spec_invalid"


def test_file_source_reads_every_frame_then_ends(tmp_path: Path) -> None:
    path = tmp_path / "codes.avi"
    count = write_video(path, PAYLOADS[:2])
    source = open_source(f"file:{path}")
    source.open()
    try:
        frames = []
        while (image := source.read()) is not None:
            frames.append(image)
    finally:
        source.close()
    assert len(frames) == count
    assert frames[0].shape == (240, 320, 3) and frames[0].dtype == np.uint8
    decoder = PipelineDecoder()
    assert [d.text for d in decoder.decode(frames[0])] == [PAYLOADS[0]]
    assert [d.text for d in decoder.decode(frames[-1])] == [PAYLOADS[1]]


# -- shared capture ------------------------------------------------------------------------------------------


async def test_two_consumers_share_one_opened_source(tmp_path: Path) -> None:
    path = tmp_path / "codes.avi"
    write_video(path, PAYLOADS[:2], frames_each=5, fps=100.0)
    source = CountingSource(open_source(f"file:{path}?loop=1"))
    camera = SharedCamera(source)
    scanner, call_track = camera.subscribe("scanner"), camera.subscribe("call")
    decoder = PipelineDecoder()

    async def scan() -> set[str]:
        seen: set[str] = set()
        async for frame in scanner:
            seen.update(d.text for d in decoder.decode(frame.image))
            if len(seen) == 2:
                return seen
        return seen

    async def slow_consumer(n: int) -> list[Frame]:
        got = []
        async for frame in call_track:
            got.append(frame)
            if len(got) == n:
                return got
            await asyncio.sleep(0.05)  # simulated encode time: slower than the 100 fps source
        return got

    async with camera:
        seen, frames = await asyncio.wait_for(asyncio.gather(scan(), slow_consumer(5)), WAIT)
        stats = camera.stats()
    assert seen == set(PAYLOADS[:2])
    assert [f.index for f in frames] == sorted({f.index for f in frames})  # newest only, never repeated
    assert source.opens == 1 and stats.opens == 1
    assert stats.drops["call"] > 0  # the slow consumer skipped frames instead of queueing them
    assert stats.frames_read >= 10 and stats.fps > 0
    assert stats.state == "running"
    assert camera.stats().state == "stopped"


async def test_file_end_without_loop_is_a_fault_then_recovers(tmp_path: Path) -> None:
    path = tmp_path / "short.avi"
    write_video(path, PAYLOADS[:1], frames_each=3, fps=100.0)
    faults: list[tuple[str, str]] = []
    recovered = asyncio.Event()
    faulted = asyncio.Event()

    def on_fault(kind: str, detail: str) -> None:
        faults.append((kind, detail))
        faulted.set()

    camera = SharedCamera(
        open_source(f"file:{path}"),
        on_fault=on_fault,
        on_recovered=recovered.set,
        backoff_initial_s=0.02,
        backoff_max_s=0.1,
    )
    async with camera:
        await asyncio.wait_for(faulted.wait(), WAIT)
        # Reopening plays the file again: the first frame after the fault is the recovery.
        await asyncio.wait_for(recovered.wait(), WAIT)
        stats = camera.stats()
    assert faults[0][0] == FAULT_ENDED
    assert stats.opens >= 2 and stats.faults >= 1


async def test_images_folder_deleted_then_back_is_fault_then_recovered(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, payload in enumerate(PAYLOADS):
        assert cv2.imwrite(str(folder / f"{i:02d}.png"), qr_frame(payload))
    events: list[str] = []
    faulted, recovered = asyncio.Event(), asyncio.Event()

    def on_fault(kind: str, detail: str) -> None:
        events.append(kind)
        faulted.set()

    def on_recovered() -> None:
        events.append("recovered")
        recovered.set()

    camera = SharedCamera(
        open_source(f"images:{folder}?fps=50"),
        on_fault=on_fault,
        on_recovered=on_recovered,
        backoff_initial_s=0.02,
        backoff_max_s=0.1,
    )
    sub = camera.subscribe("scanner")
    async with camera:
        first = await asyncio.wait_for(sub.next(), WAIT)
        assert first.image.shape == (240, 320, 3)
        shutil.rmtree(folder)
        await asyncio.wait_for(faulted.wait(), WAIT)
        assert camera.stats().state == "faulted"
        assert not recovered.is_set()
        folder.mkdir()
        assert cv2.imwrite(str(folder / "00.png"), qr_frame(PAYLOADS[0]))
        await asyncio.wait_for(recovered.wait(), WAIT)
        after = await asyncio.wait_for(sub.next(), WAIT)
    assert events == [FAULT_READ, "recovered"]  # one fault however many retries, then one recovery
    assert after.index > first.index
    assert [d.text for d in PipelineDecoder().decode(after.image)] == [PAYLOADS[0]]


async def test_stop_ends_subscribers(tmp_path: Path) -> None:
    camera = SharedCamera(open_source("demo:?fps=30", demo_payloads=PAYLOADS[:1]))
    sub = camera.subscribe()
    await camera.start()
    await asyncio.wait_for(sub.next(), WAIT)
    waiting = asyncio.create_task(sub.next())
    await camera.stop()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, WAIT)


# -- demo scene -------------------------------------------------------------------------------------------------


def test_demo_scene_shows_each_payload_in_turn_and_nothing_between() -> None:
    scene = DemoScene(PAYLOADS)
    decoder = PipelineDecoder(budget_ms=200)
    cycle = scene.timing.cycle_s
    stay = scene.timing.empty_s + scene.timing.slide_s + scene.timing.stay_s / 2
    for i, payload in enumerate(PAYLOADS):
        t = i * cycle + stay
        assert scene.visible_payload(t) == payload
        frame = scene.render(t)
        assert frame.shape == (720, 1280, 3) and frame.dtype == np.uint8
        assert [d.text for d in decoder.decode(frame)] == [payload]
    empty = scene.render(0.5)
    assert scene.visible_payload(0.5) is None
    assert decoder.decode(empty) == []
