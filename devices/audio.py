"""Loudspeaker and microphone behind two small protocols, plus the PCM/WAV helpers they share.

Sinks (``AudioSink``): ``SoundDeviceSink`` (PortAudio through sounddevice), ``WavFileSink`` (numbered
WAV files in a folder, for tests and machines without a sound card) and ``NullSink``.
Sources (``AudioSource``, 20 ms int16 mono frames at 48 kHz): ``SoundDeviceSource`` and
``SyntheticSource`` (a tone or a looped WAV file, paced in real time).

``open_sink(spec)`` / ``open_source(spec)`` build one from a settings string:
``"sounddevice"``, ``"sounddevice:DEVICE"`` (index or part of the name), ``"wav:DIR"``, ``"null"``;
``"file:PATH.wav"``, ``"tone:440"`` for sources. ``resample`` (re-exported from :mod:`devices.resample`)
converts between rates with a band-limited filter.

PortAudio runs its callbacks on its own thread. Playback hands the end of the clip back to the loop
with ``call_soon_threadsafe``; capture goes through :class:`FrameBridge`, a bounded hand-off that
drops the oldest frame and counts drops. Opening and closing a stream is blocking, so it runs in
``asyncio.to_thread``; nothing here joins a thread from the event loop. sounddevice is imported
lazily: it fails at import time when libportaudio2 is missing, and that must be a clear
:class:`AudioDeviceError`, not an import crash of the whole agent.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import threading
import time
import wave
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from agent.errors import ConfigError, KioskError
from devices.resample import resample as resample  # re-exported: callers take PCM helpers from here

logger = logging.getLogger(__name__)

Pcm = npt.NDArray[np.int16]

MIC_SAMPLE_RATE = 48_000
MIC_FRAME_SAMPLES = 960  # 20 ms at 48 kHz, the WebRTC audio frame
# How long past the clip's own duration playback may take before we call the device stuck.
_PLAYBACK_SLACK_S = 5.0


class AudioDeviceError(KioskError):
    """The sound card is missing, busy or failed; the call-out text still reaches the screens."""

    code = "audio_device"
    http_status = 503


# --- PCM and WAV helpers ---------------------------------------------------------------------------


def to_int16_mono(data: npt.NDArray[Any]) -> Pcm:
    """Mix to mono and convert to int16; floats are taken as -1..1 full scale."""
    array = np.asarray(data)
    is_float = np.issubdtype(array.dtype, np.floating)
    if array.ndim == 2:
        array = array.astype(np.float64).mean(axis=1) if array.shape[1] > 1 else array[:, 0]
    elif array.ndim != 1:
        raise ValueError(f"expected mono or (samples, channels) PCM, got shape {array.shape}")
    if array.dtype == np.int16:
        out: Pcm = np.ascontiguousarray(array, dtype=np.int16)
        return out
    array = np.rint(array.astype(np.float64) * (32767.0 if is_float else 1.0))
    out = np.clip(array, -32768, 32767).astype(np.int16)
    return out


def read_wav(path: Path) -> tuple[Pcm, int]:
    """Read an 8/16/32-bit PCM WAV as int16 mono; returns (samples, sample_rate). Blocking."""
    with wave.open(str(path), "rb") as reader:
        channels, width, rate = reader.getnchannels(), reader.getsampwidth(), reader.getframerate()
        raw = reader.readframes(reader.getnframes())
    if width == 1:
        data = (np.frombuffer(raw, dtype=np.uint8).astype(np.int16) - 128) * 256
    elif width == 2:
        data = np.frombuffer(raw, dtype="<i2").astype(np.int16)
    elif width == 4:
        data = (np.frombuffer(raw, dtype="<i4") >> 16).astype(np.int16)
    else:
        raise ValueError(f"{path.name}: unsupported WAV sample width {width * 8} bits")
    if channels > 1:
        data = to_int16_mono(data.reshape(-1, channels))
    return np.ascontiguousarray(data, dtype=np.int16), rate


def write_wav(path: Path, pcm: Pcm, sample_rate: int) -> None:
    """Write int16 mono PCM as a WAV file, via a temporary name so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with wave.open(str(tmp), "wb") as writer:
            writer.setnchannels(1)
            writer.setsampwidth(2)
            writer.setframerate(sample_rate)
            writer.writeframes(np.ascontiguousarray(pcm, dtype="<i2").tobytes())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


# --- sinks -------------------------------------------------------------------------------------------


class AudioSink(Protocol):
    """Somewhere to play a clip; ``play`` returns once the clip has finished playing."""

    async def play(self, pcm: Pcm, sample_rate: int) -> None: ...


def _sounddevice() -> Any:
    try:
        import sounddevice
    except OSError as exc:  # the PortAudio shared library is missing
        raise AudioDeviceError(
            f"Không dùng được thiết bị âm thanh: thư viện PortAudio chưa được cài (libportaudio2): {exc}"
        ) from exc
    return sounddevice


DeviceSpec = int | str | None


def _resolve_device(sd: Any, device: DeviceSpec, kind: Literal["output", "input"]) -> int:
    """Find the PortAudio device index, with a readable error instead of PortAudio's "device -1"."""
    what = "loa (audio output)" if kind == "output" else "micrô (audio input)"
    try:
        devices = list(sd.query_devices())
    except sd.PortAudioError as exc:
        raise AudioDeviceError(f"Không liệt kê được thiết bị âm thanh: {exc}") from exc
    usable = [i for i, info in enumerate(devices) if int(info[f"max_{kind}_channels"]) > 0]
    if not usable:
        raise AudioDeviceError(f"Không tìm thấy {what} nào trên máy này (no {kind} device)")
    if device is None:
        default = sd.default.device[0 if kind == "input" else 1]
        return int(default) if isinstance(default, int) and default in usable else usable[0]
    if isinstance(device, int):
        if device in usable:
            return device
        raise AudioDeviceError(f"Không có {what} số {device}; có: {', '.join(map(str, usable))}")
    matches = [i for i in usable if device.lower() in str(devices[i]["name"]).lower()]
    if not matches:
        names = "; ".join(str(devices[i]["name"]) for i in usable)
        raise AudioDeviceError(f"Không tìm thấy {what} tên {device!r}; có: {names}")
    return matches[0]


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _call_in_loop(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    # From a device thread; the loop may already be closed at shutdown, then nobody is waiting anyway.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback)


class SoundDeviceSink:
    """Plays clips on a PortAudio output device, one at a time.

    The device is looked up and opened on each ``play`` (a USB speaker may be replugged between
    call-outs); a missing device raises :class:`AudioDeviceError`.
    """

    def __init__(self, device: DeviceSpec = None, *, latency: str | float = "high") -> None:
        self._device = device
        self._latency = latency
        self._lock = asyncio.Lock()
        self.status_events = 0  # PortAudio under/overflow flags seen in the callback

    async def probe(self) -> str:
        """The name of the output device that ``play`` would use; raises AudioDeviceError."""
        sd = _sounddevice()
        index = await asyncio.to_thread(_resolve_device, sd, self._device, "output")
        info = await asyncio.to_thread(sd.query_devices, index)
        return str(info["name"])

    async def play(self, pcm: Pcm, sample_rate: int) -> None:
        data = to_int16_mono(pcm)
        if data.size == 0:
            return
        async with self._lock:
            await self._play(data, sample_rate)

    async def _play(self, data: Pcm, sample_rate: int) -> None:
        sd = _sounddevice()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        device = await asyncio.to_thread(_resolve_device, sd, self._device, "output")
        position = 0

        def callback(outdata: npt.NDArray[np.int16], frames: int, _time: Any, status: Any) -> None:
            nonlocal position
            if status:
                self.status_events += 1
            chunk = data[position : position + frames]
            outdata[: chunk.size, 0] = chunk
            position += chunk.size
            if chunk.size < frames:
                outdata[chunk.size :] = 0
                raise sd.CallbackStop

        stream = await _start_stream(sd, lambda: sd.OutputStream(
            samplerate=sample_rate, device=device, channels=1, dtype="int16", latency=self._latency,
            callback=callback, finished_callback=lambda: _call_in_loop(loop, lambda: _wake(done)),
        ), f"Không mở được loa (thiết bị {device}, {sample_rate} Hz)")
        try:
            await asyncio.wait_for(asyncio.shield(done), data.size / sample_rate + _PLAYBACK_SLACK_S)
        except TimeoutError as exc:
            raise AudioDeviceError(f"Loa không phát xong (thiết bị {device} bị treo)") from exc
        finally:
            # abort() is a no-op after a clean finish and stops a cancelled or stuck clip at once.
            await asyncio.to_thread(_abort_and_close, stream)


class PcmFeed:
    """Samples handed from the event loop to a PortAudio callback thread.

    The callback never waits: when the feed runs dry it plays silence (a counted underrun); when
    more than ``max_samples`` wait, the oldest are dropped (counted) so latency stays bounded.
    Dropped samples count as consumed, so nobody waits for them.
    """

    def __init__(self, max_samples: int) -> None:
        self.max_samples = max_samples
        self.written = 0
        self.consumed = 0
        self.underruns = 0
        self.dropped = 0
        self._chunks: collections.deque[Pcm] = collections.deque()
        self._offset = 0
        self._buffered = 0
        self._lock = threading.Lock()

    def write(self, pcm: Pcm) -> int:
        """Queue samples; returns the running total that marks their end."""
        with self._lock:
            if pcm.size:
                self._chunks.append(pcm)
                self._buffered += pcm.size
                self.written += pcm.size
            while self._buffered > self.max_samples:
                head = self._chunks[0]
                excess = self._buffered - self.max_samples
                take = min(head.size - self._offset, excess)
                self._skip(take)
                self.dropped += take
            return self.written

    def read_into(self, out: npt.NDArray[np.int16]) -> int:
        """Fill `out` (1-D) from the queue, then silence; returns the number of real samples."""
        filled = 0
        with self._lock:
            while filled < out.size and self._chunks:
                head = self._chunks[0]
                take = min(head.size - self._offset, out.size - filled)
                out[filled : filled + take] = head[self._offset : self._offset + take]
                filled += take
                self._skip(take)
            if filled < out.size:
                out[filled:] = 0
                if filled:  # ran dry in the middle of a stream (idle silence is not an underrun)
                    self.underruns += 1
        return filled

    def _skip(self, count: int) -> None:
        self._offset += count
        self._buffered -= count
        self.consumed += count
        if self._chunks and self._offset >= self._chunks[0].size:
            self._chunks.popleft()
            self._offset = 0


class SoundDeviceStreamSink:
    """A PortAudio output stream kept open while audio keeps coming (the officer's voice in a call).

    ``play`` queues a clip and returns once the device consumed it, so back-to-back clips play
    without the gap of opening a stream per clip; the stream closes after ``idle_close_s`` of
    silence (a USB speaker may be replugged between calls).
    """

    def __init__(self, device: DeviceSpec = None, *, sample_rate: int = MIC_SAMPLE_RATE, latency: str | float = "low",
                 max_buffer_s: float = 0.5, idle_close_s: float = 3.0) -> None:
        self._device = device
        self.sample_rate = sample_rate
        self._latency = latency
        self.idle_close_s = idle_close_s
        self.feed = PcmFeed(int(max_buffer_s * sample_rate))
        self._stream: Any = None
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._idle: asyncio.TimerHandle | None = None
        self._lock = asyncio.Lock()

    async def play(self, pcm: Pcm, sample_rate: int) -> None:
        data = to_int16_mono(pcm)
        if sample_rate != self.sample_rate:
            data = resample(data, sample_rate, self.sample_rate)
        if data.size == 0:
            return
        loop = asyncio.get_running_loop()
        if self._idle is not None:
            self._idle.cancel()
        async with self._lock:
            if self._stream is None:
                self._stream = await self._open(loop)
        end = self.feed.write(data)
        done: asyncio.Future[None] = loop.create_future()
        self._waiters.append((end, done))
        self._progress()
        try:
            await asyncio.wait_for(done, data.size / self.sample_rate + _PLAYBACK_SLACK_S)
        except TimeoutError as exc:
            await self.close()
            raise AudioDeviceError("Loa không phát (thiết bị bị treo)") from exc
        self._idle = loop.call_later(self.idle_close_s, lambda: loop.create_task(self.close()))

    async def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            await asyncio.to_thread(_abort_and_close, stream)
        for _, waiter in self._waiters:
            _wake(waiter)
        self._waiters.clear()

    def _progress(self) -> None:
        consumed = self.feed.consumed
        keep = []
        for end, waiter in self._waiters:
            if end <= consumed:
                _wake(waiter)
            else:
                keep.append((end, waiter))
        self._waiters = keep

    async def _open(self, loop: asyncio.AbstractEventLoop) -> Any:
        sd = _sounddevice()
        device = await asyncio.to_thread(_resolve_device, sd, self._device, "output")

        def callback(outdata: npt.NDArray[np.int16], frames: int, _time: Any, status: Any) -> None:
            self.feed.read_into(outdata[:, 0])
            _call_in_loop(loop, self._progress)

        return await _start_stream(sd, lambda: sd.OutputStream(
            samplerate=self.sample_rate, device=device, channels=1, dtype="int16", latency=self._latency,
            callback=callback,
        ), f"Không mở được loa (thiết bị {device})")


async def _start_stream(sd: Any, make: Callable[[], Any], failure: str) -> Any:
    """Open and start a PortAudio stream off the loop; a failure is one readable AudioDeviceError."""

    def open_and_start() -> Any:
        stream = make()
        try:
            stream.start()
        except BaseException:
            stream.close()
            raise
        return stream

    try:
        return await asyncio.to_thread(open_and_start)
    except (sd.PortAudioError, ValueError) as exc:
        raise AudioDeviceError(f"{failure}: {exc}") from exc


def _abort_and_close(stream: Any) -> None:
    try:
        stream.abort()
    finally:
        stream.close()


@dataclass(frozen=True)
class PlayedClip:
    """One clip a :class:`WavFileSink` played; ``started``/``ended`` are from its clock (monotonic)."""

    index: int
    path: Path
    sample_rate: int
    samples: int
    started: float
    ended: float

    @property
    def duration(self) -> float:
        return self.samples / self.sample_rate


class WavFileSink:
    """Writes each clip to ``DIR/0001.wav``, ``0002.wav``… and remembers what it played.

    Numbering continues after the files already in the folder. With ``realtime=True`` a ``play``
    lasts as long as the clip would on a speaker, so callers see real pacing without a sound card.
    """

    def __init__(
        self, directory: Path, *, realtime: bool = False, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.directory = Path(directory)
        self.realtime = realtime
        self._clock = clock
        self._lock = asyncio.Lock()
        self._next_index: int | None = None
        self.played: list[PlayedClip] = []

    def _write(self, data: Pcm, sample_rate: int) -> tuple[int, Path]:
        if self._next_index is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            numbers = [int(p.stem) for p in self.directory.glob("*.wav") if p.stem.isdigit()]
            self._next_index = max(numbers, default=0) + 1
        index = self._next_index
        self._next_index += 1
        path = self.directory / f"{index:04d}.wav"
        write_wav(path, data, sample_rate)
        return index, path

    async def play(self, pcm: Pcm, sample_rate: int) -> None:
        data = to_int16_mono(pcm)
        async with self._lock:
            started = self._clock()
            index, path = await asyncio.to_thread(self._write, data, sample_rate)
            if self.realtime:
                remaining = data.size / sample_rate - (self._clock() - started)
                if remaining > 0:
                    await asyncio.sleep(remaining)  # stands in for the speaker playing the clip
            self.played.append(PlayedClip(index, path, sample_rate, data.size, started, self._clock()))


class NullSink:
    """Discards clips (an office without a loudspeaker); counts them for telemetry."""

    def __init__(self) -> None:
        self.played = 0

    async def play(self, pcm: Pcm, sample_rate: int) -> None:
        self.played += 1


class FallbackSink:
    """The sound card when there is one, else WAV files: a developer's laptop speaks, a headless box
    (CI, a VM) keeps the call-outs as files instead of failing every one."""

    def __init__(self, primary: AudioSink, fallback: AudioSink) -> None:
        self.primary: AudioSink | None = primary
        self.fallback = fallback

    async def play(self, pcm: Pcm, sample_rate: int) -> None:
        if self.primary is not None:
            try:
                await self.primary.play(pcm, sample_rate)
                return
            except AudioDeviceError as exc:
                logger.warning("no usable loudspeaker (%s): call-outs go to WAV files from now on", exc)
                self.primary = None
        await self.fallback.play(pcm, sample_rate)


# --- sources -----------------------------------------------------------------------------------------


class AudioSource(Protocol):
    """A microphone: ``frames()`` yields int16 mono frames of ``frame_samples`` at ``sample_rate``.

    Iterate under ``contextlib.aclosing(source.frames())`` so the device is closed when you stop.
    """

    sample_rate: int
    frame_samples: int

    @property
    def dropped(self) -> int: ...

    def frames(self) -> AsyncGenerator[Pcm, None]: ...


class FrameBridge:
    """Device thread → event loop hand-off: bounded, drops the oldest frame and counts the drops.

    ``push`` and ``close`` may be called from any thread; ``get`` from the loop, by one consumer.
    At most one wake-up is scheduled on the loop per wait, so a stalled loop cannot pile up callbacks.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, maxlen: int) -> None:
        if maxlen < 1:
            raise ValueError("maxlen must be at least 1")
        self._loop = loop
        self._frames: collections.deque[Pcm] = collections.deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self.dropped = 0

    def push(self, frame: Pcm) -> None:
        with self._lock:
            if self._closed:
                return
            if len(self._frames) == self._frames.maxlen:
                self.dropped += 1
            self._frames.append(frame)
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            _call_in_loop(self._loop, lambda: _wake(waiter))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            _call_in_loop(self._loop, lambda: _wake(waiter))

    async def get(self) -> Pcm | None:
        """The oldest frame; None once closed and drained."""
        while True:
            with self._lock:
                if self._frames:
                    return self._frames.popleft()
                if self._closed:
                    return None
                waiter = self._waiter = self._loop.create_future()
            await waiter


class _Rechunker:
    """Cuts device blocks of any size into frames of exactly ``size`` samples."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._pending = np.zeros(0, dtype=np.int16)

    def feed(self, block: Pcm) -> list[Pcm]:
        data = np.concatenate([self._pending, block]) if self._pending.size else block
        count = data.size // self._size
        frames = [data[i * self._size : (i + 1) * self._size] for i in range(count)]
        self._pending = data[count * self._size :].copy()
        return frames


class SoundDeviceSource:
    """Microphone through PortAudio: the input callback pushes into a bounded :class:`FrameBridge`."""

    sample_rate = MIC_SAMPLE_RATE
    frame_samples = MIC_FRAME_SAMPLES

    def __init__(
        self, device: DeviceSpec = None, *, queue_frames: int = 50, latency: str | float = "low"
    ) -> None:
        self._device = device
        self._queue_frames = queue_frames  # 50 × 20 ms = 1 s of audio before the oldest is dropped
        self._latency = latency
        self._dropped_before = 0
        self._bridge: FrameBridge | None = None
        self.status_events = 0

    @property
    def dropped(self) -> int:
        return self._dropped_before + (self._bridge.dropped if self._bridge else 0)

    async def frames(self) -> AsyncGenerator[Pcm, None]:
        sd = _sounddevice()
        loop = asyncio.get_running_loop()
        device = await asyncio.to_thread(_resolve_device, sd, self._device, "input")
        bridge = FrameBridge(loop, self._queue_frames)

        def callback(indata: npt.NDArray[np.int16], _frames: int, _time: Any, status: Any) -> None:
            if status:
                self.status_events += 1
            bridge.push(indata[:, 0].copy())

        stream = await _start_stream(sd, lambda: sd.InputStream(
            samplerate=self.sample_rate, blocksize=self.frame_samples, device=device, channels=1, dtype="int16",
            latency=self._latency, callback=callback, finished_callback=bridge.close,
        ), f"Không mở được micrô (thiết bị {device})")
        self._bridge = bridge
        rechunk = _Rechunker(self.frame_samples)
        try:
            while (block := await bridge.get()) is not None:
                for frame in rechunk.feed(block):
                    yield frame
        finally:
            self._dropped_before += bridge.dropped
            self._bridge = None
            await asyncio.to_thread(_abort_and_close, stream)


class SyntheticSource:
    """A stand-in microphone: a sine tone, or a WAV file played in a loop, paced in real time.

    When the consumer falls more than ``max_lag_s`` behind, the missed frames are skipped and counted
    as dropped, the way a real device queue would shed them.
    """

    sample_rate = MIC_SAMPLE_RATE
    frame_samples = MIC_FRAME_SAMPLES

    def __init__(
        self,
        *,
        tone_hz: float = 440.0,
        wav_path: Path | None = None,
        amplitude: float = 0.3,
        realtime: bool = True,
        max_lag_s: float = 0.2,
    ) -> None:
        if not 0.0 <= amplitude <= 1.0:
            raise ValueError("amplitude must be within 0..1")
        self.tone_hz = tone_hz
        self.wav_path = wav_path
        self.amplitude = amplitude
        self.realtime = realtime
        self.max_lag_s = max_lag_s
        self.dropped = 0

    async def _loop_samples(self) -> Pcm | None:
        if self.wav_path is None:
            return None
        try:
            pcm, rate = await asyncio.to_thread(read_wav, self.wav_path)
        except (OSError, EOFError, wave.Error, ValueError) as exc:
            raise AudioDeviceError(f"Không đọc được tệp âm thanh {self.wav_path}: {exc}") from exc
        pcm = resample(pcm, rate, self.sample_rate)
        if pcm.size == 0:
            raise AudioDeviceError(f"Tệp âm thanh rỗng: {self.wav_path}")
        return pcm

    def _tone(self, index: int) -> Pcm:
        n = np.arange(index * self.frame_samples, (index + 1) * self.frame_samples, dtype=np.float64)
        wave_ = np.sin(2.0 * np.pi * self.tone_hz * n / self.sample_rate) * self.amplitude * 32767.0
        return np.rint(wave_).astype(np.int16)

    async def frames(self) -> AsyncGenerator[Pcm, None]:
        looped = await self._loop_samples()
        loop = asyncio.get_running_loop()
        frame_s = self.frame_samples / self.sample_rate
        start = loop.time()
        index = 0
        while True:
            if self.realtime:
                delay = start + index * frame_s - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)  # pacing: a microphone delivers a frame every 20 ms
                elif -delay > self.max_lag_s:
                    skipped = int(-delay / frame_s)
                    index += skipped
                    self.dropped += skipped
            else:
                await asyncio.sleep(0)
            if looped is None:
                yield self._tone(index)
            else:
                first = index * self.frame_samples
                yield looped[np.arange(first, first + self.frame_samples) % looped.size]
            index += 1


# --- factories ---------------------------------------------------------------------------------------


def _device_arg(arg: str) -> DeviceSpec:
    arg = arg.strip()
    if not arg:
        return None
    return int(arg) if arg.isdigit() else arg


def open_sink(spec: str) -> AudioSink:
    """``"sounddevice"``, ``"sounddevice:DEVICE"``, ``"wav:DIR"``, ``"auto:DIR"`` (the sound card, else WAV
    files in DIR) or ``"null"``; no device is touched yet."""
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "auto":
        if not arg.strip():
            raise ConfigError("audio sink 'auto:DIR' needs a folder for when there is no sound card")
        return FallbackSink(SoundDeviceSink(None), WavFileSink(Path(arg.strip())))
    if kind == "sounddevice":
        return SoundDeviceSink(_device_arg(arg))
    if kind == "wav":
        if not arg.strip():
            raise ConfigError("audio sink 'wav:DIR' needs a folder, e.g. wav:/var/lib/ward-kiosk/audio")
        return WavFileSink(Path(arg.strip()))
    if kind == "null" and not arg:
        return NullSink()
    raise ConfigError(f"unknown audio sink {spec!r}; use sounddevice[:DEVICE], wav:DIR, auto:DIR or null")


def open_stream_sink(spec: str) -> AudioSink:
    """Like ``open_sink``, but ``sounddevice[:DEVICE]`` keeps one output stream open while audio flows
    (call audio arrives in short clips back to back)."""
    kind, _, arg = spec.partition(":")
    if kind.strip().lower() == "sounddevice":
        return SoundDeviceStreamSink(_device_arg(arg))
    if kind.strip().lower() == "auto" and arg.strip():
        return FallbackSink(SoundDeviceStreamSink(None), WavFileSink(Path(arg.strip())))
    return open_sink(spec)


def open_source(spec: str) -> AudioSource:
    """``"sounddevice[:DEVICE]"``, ``"file:PATH.wav"`` or ``"tone:HZ"``; no device is touched yet."""
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "sounddevice":
        return SoundDeviceSource(_device_arg(arg))
    if kind == "file":
        if not arg.strip():
            raise ConfigError("audio source 'file:PATH.wav' needs a file path")
        return SyntheticSource(wav_path=Path(arg.strip()))
    if kind == "tone":
        try:
            hz = float(arg) if arg.strip() else 440.0
        except ValueError:
            hz = -1.0
        if not 0 < hz < MIC_SAMPLE_RATE / 2:
            raise ConfigError(f"audio source {spec!r}: tone frequency must be between 0 and 24000 Hz")
        return SyntheticSource(tone_hz=hz)
    raise ConfigError(f"unknown audio source {spec!r}; use sounddevice[:DEVICE], file:PATH.wav or tone:HZ")
