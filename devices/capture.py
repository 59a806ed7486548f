"""One capture thread per camera, shared by every consumer (QR scanner, call video track, snapshots).

The thread reads the FrameSource at its native rate and keeps only the latest frame. Consumers get an
async subscriber that yields the newest frame each time; a consumer slower than the camera skips
frames, and the skipped frames are counted as its drops. Nothing queues: memory stays one frame.

A source that fails (cannot open, read error, a file that ended without loop) is closed and reopened
with exponential backoff; the first failure and the first frame after it are reported through
``on_fault(kind, detail)`` / ``on_recovered()``, called on the event loop.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from agent.errors import KioskError
from devices import imaging
from devices.camera import FrameSource

logger = logging.getLogger(__name__)

FaultCallback = Callable[[str, str], None]
RecoveredCallback = Callable[[], None]

# Fault kinds given to on_fault.
FAULT_OPEN = "open_failed"
FAULT_READ = "read_failed"
FAULT_ENDED = "stream_ended"


@dataclass(frozen=True, slots=True)
class Frame:
    """A captured frame: ``index`` counts frames since start (1-based), ``at`` is time.monotonic()."""

    image: imaging.Image
    index: int
    at: float


@dataclass(frozen=True, slots=True)
class CameraStats:
    """Telemetry snapshot."""

    state: str
    source: str
    fps: float
    last_frame_age_s: float | None
    frames_read: int
    opens: int
    faults: int
    drops: dict[str, int] = field(default_factory=dict)


class Subscriber:
    """Yields the latest frame each time, never the same frame twice; counts the frames it skipped."""

    def __init__(self, camera: SharedCamera, name: str) -> None:
        self.name = name
        self.drops = 0
        self.received = 0
        self._camera = camera
        self._last_index = 0
        self._closed = False

    async def next(self) -> Frame:
        """The newest frame not yet seen; waits for one. Raises StopAsyncIteration once closed/stopped."""
        while True:
            if self._closed or self._camera.stopped:
                raise StopAsyncIteration
            latest = self._camera.latest
            if latest is not None and latest.index > self._last_index:
                if self._last_index:
                    self.drops += latest.index - self._last_index - 1
                self._last_index = latest.index
                self.received += 1
                return latest
            await self._camera.wait_for_frame()

    def close(self) -> None:
        """Unsubscribe; drops stay counted in the camera's stats."""
        self._closed = True
        self._camera._unsubscribe(self)

    def __aiter__(self) -> AsyncIterator[Frame]:
        return self

    async def __anext__(self) -> Frame:
        return await self.next()


class SharedCamera:
    """Opens one FrameSource once and shares its latest frame with any number of async consumers."""

    def __init__(
        self,
        source: FrameSource,
        *,
        on_fault: FaultCallback | None = None,
        on_recovered: RecoveredCallback | None = None,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 10.0,
    ) -> None:
        self.source = source
        self.on_fault = on_fault
        self.on_recovered = on_recovered
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.latest: Frame | None = None
        self.stopped = False
        self._state = "stopped"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._notify_pending = False
        self._notify_lock = threading.Lock()
        self._subscribers: list[Subscriber] = []
        self._past_drops: dict[str, int] = {}
        self._times: collections.deque[float] = collections.deque(maxlen=60)
        self._frames_read = 0
        self._opens = 0
        self._faults = 0

    # -- lifecycle (event loop side) ----------------------------------------------------------------------
    async def start(self) -> None:
        """Start the capture thread; the source is opened from it."""
        if self._thread is not None:
            raise KioskError("camera already started", "camera_started")
        self._loop = asyncio.get_running_loop()
        self.stopped = False
        self._stop.clear()
        self._state = "starting"
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.source.name}", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Stop the thread and wait for it without blocking the loop; ends every subscriber."""
        self._stop.set()
        self.stopped = True  # subscribers end now, not after a frame that raced with the stop
        self._wake()
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join)
        self._state = "stopped"

    async def __aenter__(self) -> SharedCamera:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def subscribe(self, name: str = "consumer") -> Subscriber:
        """A new consumer of the latest frames."""
        sub = Subscriber(self, name)
        self._subscribers.append(sub)
        return sub

    async def wait_for_frame(self) -> None:
        """Return when a new frame was published (or the camera stopped)."""
        if self.stopped:
            return
        if self._waiter is None or self._waiter.done():
            self._waiter = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._waiter)

    def stats(self) -> CameraStats:
        times = list(self._times)
        fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) >= 2 and times[-1] > times[0] else 0.0
        latest = self.latest
        drops = dict(self._past_drops)
        for sub in self._subscribers:
            drops[sub.name] = drops.get(sub.name, 0) + sub.drops
        return CameraStats(
            state=self._state,
            source=self.source.name,
            fps=round(fps, 2),
            last_frame_age_s=None if latest is None else round(time.monotonic() - latest.at, 3),
            frames_read=self._frames_read,
            opens=self._opens,
            faults=self._faults,
            drops=drops,
        )

    def _unsubscribe(self, sub: Subscriber) -> None:
        if sub in self._subscribers:
            self._subscribers.remove(sub)
            self._past_drops[sub.name] = self._past_drops.get(sub.name, 0) + sub.drops

    def _wake(self) -> None:
        with self._notify_lock:
            self._notify_pending = False
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- capture thread -----------------------------------------------------------------------------------
    def _run(self) -> None:
        backoff = self.backoff_initial_s
        faulted = False
        is_open = False
        next_due = time.monotonic()
        while not self._stop.is_set():
            try:
                if not is_open:
                    self._opens += 1
                    self.source.open()
                    is_open = True
                    next_due = time.monotonic()
                image = self.source.read()
                if image is None:
                    raise _Ended(f"{self.source.name} reached its end")
            except Exception as exc:
                kind = FAULT_ENDED if isinstance(exc, _Ended) else (FAULT_READ if is_open else FAULT_OPEN)
                if isinstance(exc, KioskError | _Ended):
                    logger.warning("camera %s: %s (retry in %.1fs)", self.source.name, exc, backoff)
                else:
                    logger.exception("camera %s failed (retry in %.1fs)", self.source.name, backoff)
                self._close_quietly()
                is_open = False
                self._state = "faulted"
                if not faulted:
                    faulted = True
                    self._faults += 1
                    self._call_soon(self._report_fault, kind, str(exc))
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.backoff_max_s)
                continue
            now = time.monotonic()
            self._frames_read += 1
            self._times.append(now)
            self.latest = Frame(image, self._frames_read, now)
            self._state = "running"
            if faulted:
                faulted = False
                backoff = self.backoff_initial_s
                self._call_soon(self._report_recovered)
            self._publish()
            pace = self.source.pace_fps
            if pace:
                # Files, folders and the demo scene do not block until the next frame: pace them.
                next_due = max(next_due + 1.0 / pace, now - 1.0 / pace)
                self._stop.wait(max(0.0, next_due - time.monotonic()))
        self._close_quietly()

    def _close_quietly(self) -> None:
        try:
            self.source.close()
        except Exception:  # closing a broken device must not kill the capture thread
            logger.exception("camera %s: close failed", self.source.name)

    def _publish(self) -> None:
        # At most one wake-up pending on the loop, however fast the camera and however busy the loop.
        with self._notify_lock:
            if self._notify_pending:
                return
            self._notify_pending = True
        self._call_soon(self._wake)

    def _call_soon(self, callback: Callable[..., None], *args: object) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop closed between the check and the call
            logger.debug("camera %s: event loop closed", self.source.name)

    def _report_fault(self, kind: str, detail: str) -> None:
        if self.on_fault is not None:
            self.on_fault(kind, detail)

    def _report_recovered(self) -> None:
        if self.on_recovered is not None:
            self.on_recovered()


class _Ended(Exception):
    """A finite source reached its end (not a KioskError: it never reaches a user)."""
