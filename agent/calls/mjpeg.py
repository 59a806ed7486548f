"""The officer's video on the kiosk screen: an MJPEG stream (multipart/x-mixed-replace).

The cheapest robust way for a kiosk browser page to show a live picture: an ``<img>`` element pointed
at ``GET /api/calls/{id}/video.mjpeg``; no WebRTC in the kiosk's page, no JavaScript decoding. A JPEG
is encoded only when a viewer is connected and a new frame arrived, at most ``max_fps`` per second,
straight from the decoded YUV frame (about 2 ms at 640x480, in a worker thread). A slow viewer never
queues frames: each part is the newest frame once the previous part was written.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import web

from agent.calls.rtc import RemoteVideo
from agent.errors import KioskError

logger = logging.getLogger(__name__)

BOUNDARY = "kioskframe"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class VideoCalls(Protocol):
    def remote_video(self, call_id: str) -> RemoteVideo: ...

    def check_token(self, call_id: str, token: str | None) -> None: ...


async def stream(
    request: web.Request, video: RemoteVideo, *, max_fps: float = 15.0, quality: int = 5, idle_timeout: float = 10.0
) -> web.StreamResponse:
    """Write ``video`` to the client as MJPEG until the call's video ends or the client goes away."""
    response = web.StreamResponse(headers={
        "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
        "Cache-Control": "no-store",
        "X-Accel-Buffering": "no",
    })
    await response.prepare(request)
    version = 0
    period = 1.0 / max_fps
    last = 0.0
    while not video.ended:
        newer = await video.wait_newer(version, timeout=idle_timeout)
        if newer == version:
            if video.ended:
                break
            continue  # no frame for a while (the officer's camera paused): keep the stream open
        wait = last + period - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        version = video.version
        jpeg = await asyncio.to_thread(video.latest_jpeg, quality)
        if jpeg is None:
            continue
        last = time.monotonic()
        part = (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n").encode()
        try:
            await response.write(part + jpeg + b"\r\n")
        except (ConnectionResetError, ConnectionError):
            logger.debug("mjpeg viewer went away")
            break
    return response


def handler(calls: VideoCalls, *, max_fps: float = 15.0) -> Handler:
    """The aiohttp handler of ``GET /api/calls/{id}/video.mjpeg``."""

    async def video_mjpeg(request: web.Request) -> web.StreamResponse:
        try:
            token = request.headers.get("X-Call-Token") or request.query.get("token")
            calls.check_token(request.match_info["id"], token)  # the officer's face is for the caller only
            video = calls.remote_video(request.match_info["id"])
        except KioskError as exc:
            return web.json_response({"error": exc.message, "code": exc.code}, status=exc.http_status)
        return await stream(request, video, max_fps=max_fps)

    return video_mjpeg
