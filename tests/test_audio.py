"""devices.audio: PCM/WAV helpers, the file and null sinks, the thread→loop frame bridge, the synthetic
microphone, the factories, and the real PortAudio sink/source as far as this machine allows."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import wave
from pathlib import Path

import numpy as np
import pytest
import sounddevice

from agent.errors import ConfigError
from devices.audio import (
    MIC_FRAME_SAMPLES,
    MIC_SAMPLE_RATE,
    AudioDeviceError,
    FrameBridge,
    NullSink,
    SoundDeviceSink,
    SoundDeviceSource,
    SyntheticSource,
    WavFileSink,
    open_sink,
    open_source,
    read_wav,
    resample,
    to_int16_mono,
    write_wav,
)


def _tone(freq: float, seconds: float, rate: int, level: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return np.rint(np.sin(2 * np.pi * freq * t) * level * 32767).astype(np.int16)


def _peak_hz(pcm: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    return float(np.fft.rfftfreq(pcm.size, 1 / rate)[int(np.argmax(spectrum))])


def _has_device(kind: str) -> bool:
    try:
        return any(int(d[f"max_{kind}_channels"]) > 0 for d in sounddevice.query_devices())
    except sounddevice.PortAudioError:
        return False


# --- helpers -----------------------------------------------------------------------------------------


def test_wav_round_trip_and_conversions(tmp_path: Path) -> None:
    pcm = _tone(440, 0.1, 16_000)
    write_wav(tmp_path / "a.wav", pcm, 16_000)
    back, rate = read_wav(tmp_path / "a.wav")
    assert rate == 16_000 and np.array_equal(back, pcm)
    assert list(tmp_path.iterdir()) == [tmp_path / "a.wav"]  # no temporary file left behind

    # stereo 8-bit file, as a cheap recorder might write it
    with wave.open(str(tmp_path / "b.wav"), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(1)
        w.setframerate(8000)
        w.writeframes(np.array([[255, 1], [128, 128], [0, 0]], dtype=np.uint8).tobytes())
    back, rate = read_wav(tmp_path / "b.wav")
    assert rate == 8000 and back.tolist() == [0, 0, -32768]

    assert to_int16_mono(np.array([1.0, -1.0, 0.5])).tolist() == [32767, -32767, 16384]
    assert to_int16_mono(np.array([[1000, 3000]], dtype=np.int32)).tolist() == [2000]
    with pytest.raises(ValueError):
        to_int16_mono(np.zeros((2, 2, 2)))


def test_resample_keeps_pitch_and_duration() -> None:
    pcm = _tone(1000, 0.5, 22_050)
    up = resample(pcm, 22_050, 48_000)
    assert up.size == 24_000
    assert abs(_peak_hz(up, 48_000) - 1000) < 5
    assert resample(pcm, 22_050, 22_050) is pcm


# --- sinks -------------------------------------------------------------------------------------------


def _energy_db_outside(pcm: np.ndarray, rate: int, tone_hz: float, half_band: float = 150.0) -> float:
    """Energy away from the tone relative to the tone, in dB, on a Hann-windowed spectrum (edges cut off)."""
    body = pcm.astype(np.float64)[rate // 20 : -rate // 20]
    power = np.abs(np.fft.rfft(body * np.hanning(body.size))) ** 2
    freqs = np.fft.rfftfreq(body.size, 1 / rate)
    tone = power[np.abs(freqs - tone_hz) <= half_band].sum()
    rest = power[np.abs(freqs - tone_hz) > 3 * half_band].sum()
    return float(10 * np.log10(rest / tone))


def test_resample_up_leaves_no_images() -> None:
    # espeak-ng's 22 050 Hz to the 48 kHz output: linear interpolation leaves images of a 5 kHz tone
    # at 22.05 ± 5 kHz about 20 dB down; a real resampler puts them near the int16 noise floor.
    tone = _tone(5000, 1.0, 22_050)
    out = resample(tone, 22_050, 48_000)
    assert out.size == 48_000
    assert _energy_db_outside(out, 48_000, 5000) < -60


def test_resample_down_filters_what_would_alias() -> None:
    # A 48 kHz clip with a 1 kHz voice band and a 12 kHz whistle brought to 16 kHz: the whistle is above
    # the new Nyquist frequency and must be filtered out, not folded down to 4 kHz.
    rate = 48_000
    t = np.arange(rate) / rate
    mixed = np.rint((np.sin(2 * np.pi * 1000 * t) + np.sin(2 * np.pi * 12_000 * t)) * 0.4 * 32767).astype(np.int16)
    out = resample(mixed, rate, 16_000)
    assert out.size == 16_000
    assert _energy_db_outside(out, 16_000, 1000) < -60


def test_resample_keeps_timing_and_short_clips() -> None:
    # No filter delay left in: an impulse stays where it was in time, and tiny inputs keep their length.
    impulse = np.zeros(2000, dtype=np.int16)
    impulse[1000] = 20_000
    out = resample(impulse, 22_050, 48_000)
    assert out.size == round(2000 * 48_000 / 22_050)
    assert abs(int(np.argmax(out)) - 1000 * 48_000 / 22_050) <= 1
    assert resample(np.array([1000], dtype=np.int16), 8000, 48_000).size == 6
    assert resample(np.zeros(0, dtype=np.int16), 8000, 48_000).size == 0


async def test_wav_file_sink_numbers_clips_and_records_order(tmp_path: Path) -> None:
    sink = WavFileSink(tmp_path / "out")
    first, second = _tone(440, 0.05, 48_000), _tone(880, 0.02, 16_000)
    await sink.play(first, 48_000)
    await sink.play(second, 16_000)
    assert [p.path.name for p in sink.played] == ["0001.wav", "0002.wav"]
    assert sink.played[0].started <= sink.played[0].ended <= sink.played[1].started
    pcm, rate = read_wav(sink.played[1].path)
    assert rate == 16_000 and np.array_equal(pcm, second)

    # a new sink on the same folder continues the numbering instead of overwriting
    again = WavFileSink(tmp_path / "out")
    await again.play(first, 48_000)
    assert again.played[0].path.name == "0003.wav"


async def test_wav_file_sink_realtime_lasts_the_clip(tmp_path: Path) -> None:
    sink = WavFileSink(tmp_path, realtime=True)
    await sink.play(_tone(440, 0.15, 48_000), 48_000)
    clip = sink.played[0]
    assert clip.ended - clip.started >= 0.15 - 0.005  # a lower bound only: play() returns after the clip


async def test_concurrent_plays_do_not_overlap(tmp_path: Path) -> None:
    sink = WavFileSink(tmp_path, realtime=True)
    await asyncio.gather(*(sink.play(_tone(440, 0.05, 48_000), 48_000) for _ in range(3)))
    clips = sink.played
    assert len(clips) == 3
    assert all(a.ended <= b.started for a, b in itertools.pairwise(clips))


async def test_null_sink_counts() -> None:
    sink = NullSink()
    await sink.play(_tone(440, 0.01, 48_000), 48_000)
    assert sink.played == 1


async def test_sounddevice_sink_real_device_or_clear_error() -> None:
    sink = SoundDeviceSink()
    clip = np.zeros(2400, dtype=np.int16)  # 50 ms of silence: harmless if a speaker exists
    if _has_device("output"):
        await sink.play(clip, 48_000)
        assert await sink.probe()
    else:
        with pytest.raises(AudioDeviceError) as info:
            await sink.play(clip, 48_000)
        assert "loa" in info.value.message and info.value.code == "audio_device"
        assert not isinstance(info.value, sounddevice.PortAudioError)
        with pytest.raises(AudioDeviceError):
            await sink.probe()


async def test_sounddevice_sink_unknown_device_is_a_clear_error() -> None:
    with pytest.raises(AudioDeviceError) as info:
        await SoundDeviceSink("no-such-speaker-xyz").play(np.zeros(480, dtype=np.int16), 48_000)
    assert "loa" in info.value.message


async def test_sounddevice_source_without_microphone_is_a_clear_error() -> None:
    if _has_device("input"):
        pytest.skip("this machine has a microphone; the error path cannot be shown")
    source = SoundDeviceSource()
    with pytest.raises(AudioDeviceError) as info:
        async with contextlib.aclosing(source.frames()) as frames:
            await anext(frames)
    assert "micrô" in info.value.message


# --- the thread → loop bridge ------------------------------------------------------------------------


async def test_frame_bridge_drops_oldest_and_counts() -> None:
    bridge = FrameBridge(asyncio.get_running_loop(), maxlen=10)

    def producer() -> None:
        for i in range(100):
            bridge.push(np.full(4, i, dtype=np.int16))
        bridge.close()

    thread = threading.Thread(target=producer)
    thread.start()
    await asyncio.to_thread(thread.join)  # joined off the loop
    got = []
    while (frame := await bridge.get()) is not None:
        got.append(int(frame[0]))
    assert got == list(range(90, 100))
    assert bridge.dropped == 90


async def test_frame_bridge_wakes_a_waiting_consumer() -> None:
    loop = asyncio.get_running_loop()
    bridge = FrameBridge(loop, maxlen=4)
    waiting = asyncio.create_task(bridge.get())
    await asyncio.sleep(0)  # let the consumer park on its waiter
    threading.Thread(target=bridge.push, args=(np.ones(3, dtype=np.int16),)).start()
    frame = await asyncio.wait_for(waiting, 5)
    assert frame is not None and frame.tolist() == [1, 1, 1]
    threading.Thread(target=bridge.close).start()
    assert await asyncio.wait_for(bridge.get(), 5) is None


# --- synthetic microphone ----------------------------------------------------------------------------


async def test_synthetic_tone_frames() -> None:
    source = SyntheticSource(tone_hz=440, realtime=False)
    frames = []
    async with contextlib.aclosing(source.frames()) as it:
        async for frame in it:
            frames.append(frame)
            if len(frames) == 50:
                break
    assert all(f.dtype == np.int16 and f.shape == (MIC_FRAME_SAMPLES,) for f in frames)
    joined = np.concatenate(frames)  # phase-continuous across frames: one clean peak
    assert abs(_peak_hz(joined, MIC_SAMPLE_RATE) - 440) < 2
    assert 0.25 < np.abs(joined).max() / 32767 <= 0.31


async def test_synthetic_source_is_paced_in_real_time() -> None:
    source = SyntheticSource(tone_hz=440)
    loop = asyncio.get_running_loop()
    count = 0
    async with contextlib.aclosing(source.frames()) as it:
        async for _ in it:
            if count == 0:
                start = loop.time()
            count += 1
            if count == 11:
                break
    assert loop.time() - start >= 10 * 0.02 - 0.005
    assert source.dropped == 0


async def test_synthetic_source_skips_frames_when_the_consumer_lags() -> None:
    source = SyntheticSource(tone_hz=440, max_lag_s=0.04)
    async with contextlib.aclosing(source.frames()) as it:
        await anext(it)
        await asyncio.sleep(0.2)  # a consumer stalled for 10 frames
        await anext(it)
    assert source.dropped >= 5


async def test_synthetic_source_loops_a_wav_file(tmp_path: Path) -> None:
    clip = np.arange(1, 601, dtype=np.int16) * 50  # 600 samples: shorter than a frame, so frames wrap
    write_wav(tmp_path / "mic.wav", clip, MIC_SAMPLE_RATE)
    source = open_source(f"file:{tmp_path / 'mic.wav'}")
    assert isinstance(source, SyntheticSource)
    source.realtime = False
    async with contextlib.aclosing(source.frames()) as it:
        first, second = await anext(it), await anext(it)
    stream = np.concatenate([first, second])
    assert np.array_equal(stream, np.resize(clip, stream.size))


async def test_synthetic_source_missing_file(tmp_path: Path) -> None:
    source = SyntheticSource(wav_path=tmp_path / "none.wav")
    with pytest.raises(AudioDeviceError):
        async with contextlib.aclosing(source.frames()) as it:
            await anext(it)


# --- factories ---------------------------------------------------------------------------------------


def test_open_sink_and_source_specs(tmp_path: Path) -> None:
    assert isinstance(open_sink("sounddevice"), SoundDeviceSink)
    assert isinstance(open_sink("sounddevice:USB Audio"), SoundDeviceSink)
    assert isinstance(open_sink("sounddevice:2"), SoundDeviceSink)
    wav = open_sink(f"wav:{tmp_path}")
    assert isinstance(wav, WavFileSink) and wav.directory == tmp_path
    assert not any(tmp_path.iterdir())  # factories touch nothing
    assert isinstance(open_sink("null"), NullSink)
    assert isinstance(open_source("sounddevice:hw:1,0"), SoundDeviceSource)
    tone = open_source("tone:1000")
    assert isinstance(tone, SyntheticSource) and tone.tone_hz == 1000
    for bad in ("pulse", "wav:", "null:x"):
        with pytest.raises(ConfigError):
            open_sink(bad)
    for bad in ("tone:abc", "tone:30000", "file:", "mic"):
        with pytest.raises(ConfigError):
            open_source(bad)


# --- the call speaker's persistent stream ---------------------------------------------------------


def test_pcm_feed_hands_samples_to_the_callback_in_order() -> None:
    from devices.audio import PcmFeed

    feed = PcmFeed(max_samples=1000)
    a, b = np.arange(1, 301, dtype=np.int16), np.arange(301, 501, dtype=np.int16)
    assert feed.write(a) == 300 and feed.write(b) == 500
    out = np.full(128, -1, dtype=np.int16)
    got: list[np.ndarray] = []
    while feed.consumed < 500:
        n = feed.read_into(out)
        got.append(out[:n].copy())
    assert np.array_equal(np.concatenate(got), np.arange(1, 501, dtype=np.int16))
    assert out[500 % 128:].max() == 0 and feed.underruns == 1  # the last block ran dry mid-stream: silence
    assert feed.read_into(out) == 0 and feed.underruns == 1  # idle silence is not an underrun


def test_pcm_feed_drops_the_oldest_when_too_much_waits() -> None:
    from devices.audio import PcmFeed

    feed = PcmFeed(max_samples=100)
    feed.write(np.arange(80, dtype=np.int16))
    end = feed.write(np.arange(80, 160, dtype=np.int16))
    assert end == 160 and feed.dropped == 60 and feed.consumed == 60  # latency bounded to 100 samples
    out = np.zeros(100, dtype=np.int16)
    assert feed.read_into(out) == 100
    assert np.array_equal(out, np.arange(60, 160, dtype=np.int16)) and feed.consumed == 160


async def test_stream_sink_real_device_or_clear_error() -> None:
    from devices.audio import FallbackSink, SoundDeviceStreamSink, open_stream_sink

    sink = SoundDeviceStreamSink(idle_close_s=0.1)
    clip = np.zeros(4800, dtype=np.int16)
    if _has_device("output"):
        await sink.play(clip, 48_000)
        await sink.play(clip, 48_000)  # the second clip reuses the open stream
        assert sink.feed.consumed >= 9600
        await sink.close()
    else:
        with pytest.raises(AudioDeviceError) as info:
            await sink.play(clip, 48_000)
        assert "loa" in info.value.message
    assert isinstance(open_stream_sink("sounddevice"), SoundDeviceStreamSink)
    assert isinstance(open_stream_sink("auto:/tmp/x"), FallbackSink)
    assert isinstance(open_stream_sink("null"), NullSink)
