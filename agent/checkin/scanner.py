"""The QR scanner: samples the shared camera at a set rate, decodes off the event loop, debounces.

Decoding runs in one dedicated worker thread (the device edge); the loop only waits for it. A
code held in front of the camera is one scan for as long as it stays in view: it is seen again
within `debounce_s` of its last sighting, which refreshes the sighting instead of scanning again.
Payload texts are keyed by a hash so the debounce table holds no personal data.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from devices.capture import Frame, SharedCamera
from devices.decoders import Decoder

logger = logging.getLogger(__name__)

PayloadHandler = Callable[[str], Awaitable[None]]
IDLE_TICK_S = 5.0  # beat this often while waiting for a frame


@dataclass
class ScannerStats:
    frames_decoded: int = 0
    codes_seen: int = 0
    scans: int = 0
    debounced: int = 0
    decode_ms_last: float = 0.0


class Scanner:
    def __init__(self, camera: SharedCamera, decoder: Decoder, handler: PayloadHandler, rate: float = 4.0,
                 debounce_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.camera = camera
        self.decoder = decoder
        self.handler = handler
        self.interval = 1.0 / rate
        self.debounce_s = debounce_s
        self.clock = clock
        self.stats = ScannerStats()
        self._last_seen: dict[bytes, float] = {}

    def fresh(self, text: str, now: float) -> bool:
        """True the first time a code appears (or reappears after `debounce_s` out of view)."""
        key = hashlib.sha256(text.encode()).digest()
        last = self._last_seen.get(key)
        self._last_seen[key] = now
        for old in [k for k, t in self._last_seen.items() if now - t > self.debounce_s]:
            del self._last_seen[old]
        return last is None or now - last > self.debounce_s

    async def run(self, stop: asyncio.Event, beat: Callable[[], None] = lambda: None,
                  tick_s: float = IDLE_TICK_S) -> None:
        """Scan until `stop`. `beat` is called each turn and every `tick_s` while no frame comes, so a
        camera without frames is idle, but a decode or handler that never returns is a stalled loop."""
        loop = asyncio.get_running_loop()
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qr-decode")
        sub = self.camera.subscribe("scanner")
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                beat()
                started = self.clock()
                next_frame = asyncio.ensure_future(sub.next())
                done: set[asyncio.Future[Any]] = set()
                while not done:
                    done, _ = await asyncio.wait({next_frame, stopping}, timeout=tick_s,
                                                 return_when=asyncio.FIRST_COMPLETED)
                    beat()
                if next_frame not in done:
                    next_frame.cancel()
                    break
                try:
                    frame: Frame = next_frame.result()
                except StopAsyncIteration:
                    break
                t0 = time.perf_counter()
                found = await loop.run_in_executor(executor, self.decoder.decode, frame.image)
                self.stats.decode_ms_last = (time.perf_counter() - t0) * 1000
                self.stats.frames_decoded += 1
                now = self.clock()
                for code in found:
                    self.stats.codes_seen += 1
                    if not self.fresh(code.text, now):
                        self.stats.debounced += 1
                        continue
                    self.stats.scans += 1
                    try:
                        await self.handler(code.text)
                    except Exception:  # one bad decision must not stop the scanner; the text is not logged
                        logger.exception("check-in handler failed")
                # Sample at the set rate: the rest of the frames are simply not looked at.
                delay = self.interval - (self.clock() - started)
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(stopping), delay)
        finally:
            stopping.cancel()
            sub.close()
            await asyncio.to_thread(executor.shutdown, True)
