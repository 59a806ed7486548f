"""WebRTC media for calls, through aiortc (the only module that imports it).

- :class:`KioskPeer`: the kiosk's side. Sends the shared camera (:class:`CameraTrack`) and the microphone
  (:class:`MicrophoneTrack`), plays the officer's voice on an ``AudioSink`` and keeps the officer's latest
  video frame for the kiosk screen (:class:`RemoteVideo`, served as MJPEG by ``agent.calls.mjpeg``).
- :class:`OfficerPeer`: an aiortc officer (technicians' tests, the bench, the integration tests); the
  real officer console is the browser page in ``agent/calls/officer/``.
- A heartbeat on a negotiated data channel (id 0, label ``heartbeat``) on both sides: aiortc has no
  ``disconnected`` state and takes about 30 s to declare a silent peer failed; the heartbeat notices
  it in ``heartbeat_timeout`` seconds.
- :func:`restrict_host_addresses`: aioice gathers host candidates from every interface but loopback;
  a kiosk offers exactly the configured addresses (tests: only 127.0.0.1).

aiortc does not trickle ICE: ``setLocalDescription`` returns once gathering is complete, so the SDP
sent is complete.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fractions
import ipaddress
import json
import logging
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aioice.ice
import av
import numpy as np
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, VideoStreamTrack

from agent.errors import KioskError
from devices import audio, imaging
from devices.capture import Subscriber

logger = logging.getLogger(__name__)

VIDEO_CLOCK = 90_000
HEARTBEAT_LABEL = "heartbeat"
HEARTBEAT_CHANNEL_ID = 0
_SINK_CHUNK_S = 0.2  # officer audio is handed to the sink in 200 ms clips
_SINK_QUEUE_CLIPS = 5  # more than 1 s behind: the oldest clip is dropped


class CallMediaError(KioskError):
    """WebRTC negotiation failed (bad SDP, no common codec)."""

    code = "call_media_failed"
    http_status = 502


# --- ICE ---------------------------------------------------------------------------------------------

# Looked up, not imported: an aioice without it must not stop the daemon (tickets need no calls), only
# calls (restrict_host_addresses raises, CallService refuses calls).
_original_get_host_addresses: Callable[[bool, bool], list[str]] | None = getattr(
    aioice.ice, "get_host_addresses", None)
_host_addresses: list[str] | None = None


def _configured_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    if _host_addresses is None:
        assert _original_get_host_addresses is not None  # restrict_host_addresses checked it
        return list(_original_get_host_addresses(use_ipv4, use_ipv6))
    return [
        a for a in _host_addresses
        if (use_ipv4 and ipaddress.ip_address(a).version == 4) or (use_ipv6 and ipaddress.ip_address(a).version == 6)
    ]


def restrict_host_addresses(addresses: Sequence[str]) -> None:
    """Offer exactly ``addresses`` as host candidates (loopback included); empty: aioice's default.

    aioice looks its host addresses up through a module function at gathering time, and aiortc gives
    no way to pass them, so the function is replaced (process-wide: one kiosk per process).
    """
    global _host_addresses
    for address in addresses:
        ipaddress.ip_address(address)
    gather = getattr(getattr(aioice.ice, "Connection", None), "gather_candidates", None)
    names = getattr(getattr(gather, "__code__", None), "co_names", ())
    if (_original_get_host_addresses is None or getattr(aioice.ice, "get_host_addresses", None) is None
            or "get_host_addresses" not in names):
        # An aioice that no longer gathers through this function would silently offer every interface
        # (a 4G modem's public address): refuse instead.
        raise CallMediaError(f"aioice {getattr(aioice, '__version__', '?')} no longer looks host addresses up "
                             "through aioice.ice.get_host_addresses: call.host_addresses cannot be enforced")
    _host_addresses = list(addresses) or None
    aioice.ice.get_host_addresses = _configured_host_addresses


@dataclass(frozen=True, slots=True)
class IceServerSpec:
    urls: list[str]
    username: str | None = None
    credential: str | None = None


@dataclass(frozen=True, slots=True)
class PeerConfig:
    """Media and ICE settings of one peer."""

    ice_servers: list[IceServerSpec] = field(default_factory=list)
    relay_only: bool = False
    max_width: int = 640
    max_height: int = 480
    max_fps: float = 15.0
    heartbeat_interval: float = 1.0
    heartbeat_timeout: float = 3.5


def _rtc_configuration(config: PeerConfig) -> Any:
    # An explicit empty list: aiortc's default is Google's public STUN server.
    servers = [RTCIceServer(urls=s.urls, username=s.username, credential=s.credential) for s in config.ice_servers]
    policy = RTCIceTransportPolicy.RELAY if config.relay_only else RTCIceTransportPolicy.ALL
    return RTCConfiguration(iceServers=servers, iceTransportPolicy=policy)


# --- outgoing tracks ---------------------------------------------------------------------------------


def _fit(width: int, height: int, max_width: int, max_height: int) -> tuple[int, int]:
    scale = min(1.0, max_width / width, max_height / height)
    # Even sizes: yuv420p halves both dimensions for the chroma planes.
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


class CameraTrack(VideoStreamTrack):
    """The shared camera as a WebRTC video track, scaled to fit and paced to ``max_fps``.

    aiortc asks for the next frame only when the encoder finished the previous one, and the camera
    subscriber hands out the newest frame: a slow encoder skips frames (counted in the subscriber's
    drops) instead of queueing them, so latency never builds up.
    """

    kind = "video"

    def __init__(self, subscriber: Subscriber, *, max_width: int, max_height: int, max_fps: float) -> None:
        super().__init__()
        self._subscriber = subscriber
        self._max = (max_width, max_height)
        self._period = 1.0 / max_fps
        self._t0: float | None = None
        self._due: float | None = None  # when the next frame is due on the max_fps schedule
        self._last_at: float | None = None
        self._camera_interval = self._period  # a running estimate of the camera's frame interval
        self._last_pts = -1
        self.sent = 0

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        # Send each new frame as soon as it is captured (no pacing delay, so no added latency), but skip
        # frames that come faster than max_fps.
        while True:
            try:
                frame = await self._subscriber.next()
            except StopAsyncIteration:
                self.stop()
                raise MediaStreamError from None
            if self._keep(frame.at):
                break
        if self._t0 is None:
            self._t0 = frame.at
        height, width = frame.image.shape[:2]
        out_w, out_h = _fit(width, height, *self._max)
        video = av.VideoFrame.from_ndarray(imaging.to_bgr(frame.image), format="bgr24")
        # One swscale pass does both the scaling and the colour conversion the encoder needs.
        video = video.reformat(width=out_w, height=out_h, format="yuv420p")
        pts = max(self._last_pts + 1, int((frame.at - self._t0) * VIDEO_CLOCK))
        self._last_pts = pts
        video.pts = pts
        video.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self.sent += 1
        return video

    def _keep(self, at: float) -> bool:
        """Whether the frame captured at ``at`` is sent: paced against a fixed schedule (one slot per
        max_fps period), not against the last frame sent, so capture jitter does not drop every other
        frame. A frame may come early by up to half the camera's interval (or half a period): one
        frame is kept per slot, the nearest to it that has arrived."""
        if self._last_at is not None and 0 < at - self._last_at < 1.0:
            self._camera_interval += 0.1 * ((at - self._last_at) - self._camera_interval)
        self._last_at = at
        if self._due is None or at - self._due > self._period:
            self._due = at  # the first frame, or after a stall: restart the schedule, no catch-up burst
        slack = 0.5 * min(self._period, self._camera_interval)
        if at < self._due - slack:
            return False
        self._due += self._period
        return True

    def stop(self) -> None:
        super().stop()
        self._subscriber.close()


class GeneratedVideoTrack(VideoStreamTrack):
    """Frames drawn by ``make_frame(index)`` (BGR) at ``fps``: an officer's stand-in camera."""

    kind = "video"

    def __init__(self, make_frame: Callable[[int], imaging.Image], fps: float = 15.0) -> None:
        super().__init__()
        self._make_frame = make_frame
        self._period = 1.0 / fps
        self._began: float | None = None
        self._index = 0

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._began is None:
            self._began = now
        due = self._began + self._index * self._period
        if due > now:
            await asyncio.sleep(due - now)
        video = av.VideoFrame.from_ndarray(self._make_frame(self._index), format="bgr24")
        video.pts = int(self._index * self._period * VIDEO_CLOCK)
        video.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self._index += 1
        return video


class MicrophoneTrack(AudioStreamTrack):
    """An ``AudioSource`` (20 ms int16 mono frames at 48 kHz) as a WebRTC audio track.

    The source paces itself (a device delivers in real time). When the microphone is missing or fails,
    the track carries on with silence, so a call never ends because of a broken mic.
    """

    kind = "audio"

    def __init__(self, source: audio.AudioSource) -> None:
        super().__init__()
        self._source = source
        self._frames: AsyncGenerator[audio.Pcm, None] | None = None
        self._failed = False
        self._samples = 0
        self.mic_fault: str | None = None

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        if self._failed:
            frame = await super().recv()  # aiortc's paced silence
            return frame
        if self._frames is None:
            self._frames = self._source.frames()
        try:
            pcm = await anext(self._frames)
        except (audio.AudioDeviceError, StopAsyncIteration) as exc:
            logger.warning("call microphone failed, sending silence: %s", exc)
            self.mic_fault = str(exc) or "ended"
            self._failed = True
            frame = await super().recv()
            return frame
        out = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        out.sample_rate = self._source.sample_rate
        out.pts = self._samples
        out.time_base = fractions.Fraction(1, self._source.sample_rate)
        self._samples += pcm.size
        return out

    async def aclose(self) -> None:
        """Release the microphone (its generator closes the device)."""
        self.stop()
        frames, self._frames = self._frames, None
        if frames is not None:
            with contextlib.suppress(Exception):
                await frames.aclose()


# --- incoming media ----------------------------------------------------------------------------------


class RemoteVideo:
    """The latest frame received from the peer, for the screen; old frames are simply replaced."""

    def __init__(self) -> None:
        self.version = 0
        self.received = 0
        self.first_frame_at: float | None = None
        self.ended = False
        self._frame: Any = None
        self._changed = asyncio.Event()
        self._jpeg: Any = None  # av mjpeg encoder, created for the first viewer
        self._jpeg_size: tuple[int, int] | None = None

    def _put(self, frame: Any) -> None:
        self._frame = frame
        self.version += 1
        self.received += 1
        if self.first_frame_at is None:
            self.first_frame_at = time.monotonic()
        self._changed.set()
        self._changed = asyncio.Event()

    def _end(self) -> None:
        self.ended = True
        self._changed.set()

    async def wait_newer(self, version: int, timeout: float | None = None) -> int:
        """Wait for a frame newer than ``version``; returns the current version (unchanged when ended)."""
        if self.version > version or self.ended:
            return self.version
        changed = self._changed
        if timeout is None:
            await changed.wait()
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout)
        return self.version

    def latest_bgr(self) -> imaging.Image | None:
        frame = self._frame
        if frame is None:
            return None
        image: imaging.Image = frame.to_ndarray(format="bgr24")
        return image

    def latest_jpeg(self, quality: int = 5) -> bytes | None:
        """The latest frame as JPEG (FFmpeg's MJPEG encoder straight from YUV; about 2 ms at 640x480).

        ``quality`` is FFmpeg's qscale, 2 (best) to 31. Blocking: call it in a thread.
        """
        frame = self._frame
        if frame is None:
            return None
        size = (frame.width, frame.height)
        if self._jpeg is None or self._jpeg_size != size:
            codec = av.CodecContext.create("mjpeg", "w")
            codec.width, codec.height = size
            codec.pix_fmt = "yuvj420p"
            codec.time_base = fractions.Fraction(1, VIDEO_CLOCK)
            codec.qmin = codec.qmax = max(2, min(31, quality))
            self._jpeg, self._jpeg_size = codec, size
        yuv = frame.reformat(format="yuvj420p")
        yuv.pts = None
        packets = self._jpeg.encode(yuv)
        return b"".join(bytes(p) for p in packets) or None


class _AudioToSink:
    """Officer audio → ``AudioSink``, in 200 ms clips through a bounded queue (drops the oldest)."""

    def __init__(self, sink: audio.AudioSink) -> None:
        self._sink = sink
        self._clips: collections.deque[audio.Pcm] = collections.deque(maxlen=_SINK_QUEUE_CLIPS)
        self._pending: list[audio.Pcm] = []
        self._pending_samples = 0
        self._wake = asyncio.Event()
        self.dropped = 0
        self.samples = 0

    def feed(self, frame: Any) -> None:
        data = frame.to_ndarray()
        channels = len(frame.layout.channels)
        if frame.format.is_planar:
            pcm = data.T if channels > 1 else data[0]
        else:
            pcm = data.reshape(-1, channels) if channels > 1 else data.reshape(-1)
        mono = audio.to_int16_mono(np.asarray(pcm))
        if frame.sample_rate != audio.MIC_SAMPLE_RATE:
            mono = audio.resample(mono, frame.sample_rate, audio.MIC_SAMPLE_RATE)
        self.samples += mono.size
        self._pending.append(mono)
        self._pending_samples += mono.size
        if self._pending_samples >= _SINK_CHUNK_S * audio.MIC_SAMPLE_RATE:
            if len(self._clips) == self._clips.maxlen:
                self.dropped += 1
            self._clips.append(np.concatenate(self._pending))
            self._pending, self._pending_samples = [], 0
            self._wake.set()

    async def play_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._clips:
                clip = self._clips.popleft()
                try:
                    await self._sink.play(clip, audio.MIC_SAMPLE_RATE)
                except audio.AudioDeviceError as exc:
                    logger.warning("call speaker failed, officer audio dropped: %s", exc)
                    return


# --- heartbeat ---------------------------------------------------------------------------------------


class _Heartbeat:
    """Pings on the data channel and notices a silent peer; ``lost`` resolves with the reason."""

    def __init__(self, channel: Any, interval: float, timeout: float) -> None:
        self._channel = channel
        self._interval = interval
        self._timeout = timeout
        self.last_seen = time.monotonic()
        self.lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.received = 0
        channel.on("message", self._on_message)

    def _on_message(self, message: Any) -> None:
        self.last_seen = time.monotonic()
        self.received += 1

    async def run(self) -> None:
        """From "connected" on: ping every interval, and declare the peer lost after the timeout."""
        self.last_seen = time.monotonic()
        seq = 0
        while not self.lost.done():
            if self._channel.readyState == "open":
                seq += 1
                with contextlib.suppress(Exception):  # a closing channel raises; the watchdog decides
                    self._channel.send(json.dumps({"type": "ping", "seq": seq}))
            silent = time.monotonic() - self.last_seen
            if silent > self._timeout:
                self.lost.set_result("peer_lost")
                return
            await asyncio.sleep(min(self._interval, max(0.05, self._timeout - silent)))


# --- peers -------------------------------------------------------------------------------------------


class _Peer:
    """What both sides share: the connection, the heartbeat, and the handling of incoming tracks."""

    def __init__(self, config: PeerConfig, *, sink: audio.AudioSink | None = None) -> None:
        self.config = config
        self.remote_video = RemoteVideo()
        self.connected = asyncio.Event()
        self.on_video_frame: Callable[[Any], None] | None = None
        self.on_audio_frame: Callable[[Any], None] | None = None
        self._sink = sink
        self._audio_out: _AudioToSink | None = None
        self._pc: Any = None
        self._heartbeat: _Heartbeat | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._ended: asyncio.Future[str] | None = None
        self._closed = False

    @property
    def ended(self) -> asyncio.Future[str]:
        """Resolves with why the media ended by itself: ``peer_lost``, ``ice_failed`` or ``closed``."""
        if self._ended is None:
            self._ended = asyncio.get_running_loop().create_future()
        return self._ended

    @property
    def heartbeats_received(self) -> int:
        return 0 if self._heartbeat is None else self._heartbeat.received

    @property
    def audio_samples_played(self) -> int:
        return 0 if self._audio_out is None else self._audio_out.samples

    def _spawn(self, coro: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("call media task %s failed", task.get_name(), exc_info=task.exception())

    def _finish(self, reason: str) -> None:
        if not self.ended.done():
            self.ended.set_result(reason)

    def _create_pc(self) -> Any:
        pc = RTCPeerConnection(configuration=_rtc_configuration(self.config))
        self._pc = pc
        _ = self.ended
        channel = pc.createDataChannel(HEARTBEAT_LABEL, negotiated=True, id=HEARTBEAT_CHANNEL_ID)
        heartbeat = _Heartbeat(channel, self.config.heartbeat_interval, self.config.heartbeat_timeout)
        self._heartbeat = heartbeat
        heartbeat.lost.add_done_callback(lambda f: self._finish(f.result()) if not f.cancelled() else None)

        @pc.on("connectionstatechange")
        async def _state() -> None:
            state = pc.connectionState
            logger.debug("call peer connection %s", state)
            if state == "connected" and not self.connected.is_set():
                self.connected.set()
                self._spawn(heartbeat.run(), "call-heartbeat")
            elif state == "failed":
                self._finish("ice_failed")
            elif state == "closed" and not self._closed:
                self._finish("closed")

        @pc.on("track")
        def _track(track: Any) -> None:
            if track.kind == "video":
                self._spawn(self._consume_video(track), "call-video-in")
            elif track.kind == "audio":
                if self._sink is not None:
                    self._audio_out = _AudioToSink(self._sink)
                    self._spawn(self._audio_out.play_loop(), "call-audio-play")
                self._spawn(self._consume_audio(track), "call-audio-in")

        return pc

    async def _consume_video(self, track: Any) -> None:
        try:
            while True:
                frame = await track.recv()
                self.remote_video._put(frame)
                if self.on_video_frame is not None:
                    self.on_video_frame(frame)
        except MediaStreamError:
            pass
        finally:
            self.remote_video._end()

    async def _consume_audio(self, track: Any) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if self._audio_out is not None:
                    self._audio_out.feed(frame)
                if self.on_audio_frame is not None:
                    self.on_audio_frame(frame)

    async def close(self) -> None:
        """Stop sending, close the connection and every task; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._heartbeat is not None and not self._heartbeat.lost.done():
            self._heartbeat.lost.cancel()
        if self._pc is not None:
            await self._pc.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._finish("closed")


class KioskPeer(_Peer):
    """The kiosk's connection: makes the offer, sends camera and microphone, receives the officer."""

    def __init__(
        self,
        config: PeerConfig,
        *,
        camera: Subscriber,
        microphone: audio.AudioSource | None,
        speaker: audio.AudioSink | None,
    ) -> None:
        super().__init__(config, sink=speaker)
        self._camera = camera
        self._microphone = microphone
        self.video_track: CameraTrack | None = None
        self.audio_track: MicrophoneTrack | None = None

    async def offer(self) -> str:
        """Create the connection and return the complete offer SDP (all candidates gathered)."""
        pc = self._create_pc()
        self.video_track = CameraTrack(
            self._camera, max_width=self.config.max_width, max_height=self.config.max_height,
            max_fps=self.config.max_fps,
        )
        pc.addTrack(self.video_track)
        if self._microphone is not None:
            self.audio_track = MicrophoneTrack(self._microphone)
            pc.addTrack(self.audio_track)
        else:
            pc.addTrack(AudioStreamTrack())  # silence, so the officer's audio still has a transceiver
        offer = await pc.createOffer()
        await pc.setLocalDescription(offer)
        return str(pc.localDescription.sdp)

    async def accept_answer(self, sdp: str) -> None:
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        except (ValueError, KeyError, RuntimeError) as exc:
            raise CallMediaError(f"the officer's answer was not usable: {exc}") from exc

    @property
    def video_frames_sent(self) -> int:
        return 0 if self.video_track is None else self.video_track.sent

    @property
    def camera_drops(self) -> int:
        return self._camera.drops

    @property
    def mic_fault(self) -> str | None:
        return None if self.audio_track is None else self.audio_track.mic_fault

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            if self.audio_track is not None:
                await self.audio_track.aclose()
            self._camera.close()


class OfficerPeer(_Peer):
    """An aiortc officer: answers the kiosk's offer with a generated picture and a tone."""

    def __init__(
        self,
        config: PeerConfig,
        *,
        make_frame: Callable[[int], imaging.Image] | None = None,
        microphone: audio.AudioSource | None = None,
        speaker: audio.AudioSink | None = None,
    ) -> None:
        super().__init__(config, sink=speaker)
        self._make_frame = make_frame or _officer_card
        self._microphone = microphone
        self._audio_track: MicrophoneTrack | None = None

    async def answer(self, offer_sdp: str) -> str:
        pc = self._create_pc()
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        except (ValueError, KeyError, RuntimeError) as exc:
            raise CallMediaError(f"the kiosk's offer was not usable: {exc}") from exc
        pc.addTrack(GeneratedVideoTrack(self._make_frame, self.config.max_fps))
        if self._microphone is not None:
            self._audio_track = MicrophoneTrack(self._microphone)
            pc.addTrack(self._audio_track)
        else:
            pc.addTrack(AudioStreamTrack())
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
        return str(pc.localDescription.sdp)

    async def abandon(self) -> None:
        """Go silent without a goodbye (tests of dead-peer detection): stop every packet, keep no state.

        Closing the connection would send DTLS close_notify and an SCTP abort, which the kiosk notices
        at once; a crashed laptop or a pulled cable sends nothing, and that is what this simulates.
        """
        pc = self._pc
        if self._heartbeat is not None and not self._heartbeat.lost.done():
            self._heartbeat.lost.cancel()
        for task in list(self._tasks):
            task.cancel()
        if pc is None:
            return
        for transceiver in pc.getTransceivers():
            transceiver.sender.replaceTrack(None)
        transports = {t.sender.transport for t in pc.getTransceivers() if t.sender.transport is not None}
        if pc.sctp is not None:
            transports.add(pc.sctp.transport)
        for dtls in transports:
            ice = dtls.transport
            for protocol in list(ice._connection._protocols):  # the UDP sockets: close without a word
                if protocol.transport is not None:
                    protocol.transport.close()

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            if self._audio_track is not None:
                await self._audio_track.aclose()


def _officer_card(index: int) -> imaging.Image:
    image = np.full((240, 320, 3), (90, 60, 30), dtype=np.uint8)
    imaging.draw_text(image, f"Can bo {index}", (20, 120), 0.8, (255, 255, 255), 2)
    return image


def new_mic_pcm_frames(frame: Any) -> audio.Pcm:
    """A received audio frame as int16 mono (tests and the bench check what arrived)."""
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    pcm = data.reshape(-1, channels) if channels > 1 and not frame.format.is_planar else data[0]
    return audio.to_int16_mono(np.asarray(pcm))
