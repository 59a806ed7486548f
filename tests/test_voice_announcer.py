"""Call-out sentences, espeak-ng speech (real binary), the clip pack, the chime and the announcer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time
from pathlib import Path

import numpy as np
import pytest

from agent.errors import InvalidInput, KioskError
from agent.voice.announcer import Announcer, AnnouncerConfig
from agent.voice.numbers import SOUTHERN
from agent.voice.phrases import LETTER_NAMES, build_callout, parse_ticket, read_ticket
from agent.voice.tts import SAMPLE_RATE, ClipPackSynth, EspeakSynth, EspeakVoice, SpeechError, chime
from devices.audio import AudioDeviceError, Pcm, WavFileSink, read_wav, write_wav

RATE = SAMPLE_RATE


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if pcm.size else 0.0


def peak_hz(pcm: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    return float(np.fft.rfftfreq(pcm.size, 1 / RATE)[int(np.argmax(spectrum))])


def at_local(hour: int, minute: int = 0) -> datetime:
    """A UTC instant that is hour:minute in Hồ Chí Minh City (UTC+7)."""
    return datetime(2026, 11, 28, (hour - 7) % 24, minute, tzinfo=UTC)


# --- phrases -----------------------------------------------------------------------------------------


def test_callout_sentence_and_board_text() -> None:
    callout = build_callout("A012", 3)
    assert callout.speech == "Mời công dân có số thứ tự a mười hai, đến quầy số ba."
    assert callout.display == "Mời công dân có số thứ tự A012 đến quầy số 3"
    assert callout.ticket == "A012" and callout.counter == 3
    assert [p.key for p in callout.parts if p.kind == "letter"] == ["A"]


def test_ticket_readings() -> None:
    assert read_ticket("A012") == "a mười hai"
    assert read_ticket("a-012") == "a mười hai"
    assert read_ticket("B105") == "bê một trăm linh năm"
    assert read_ticket("L1005") == "e lờ một nghìn không trăm linh năm"
    assert read_ticket("đ21") == "đê hai mươi mốt"
    assert read_ticket("S024", reading="digits") == "ét xì không hai bốn"
    assert read_ticket("C0") == "xê không"
    assert read_ticket("7") == "bảy"
    assert read_ticket("B1005", SOUTHERN) == "bê một ngàn không trăm lẻ năm"
    assert parse_ticket(" x 5 ") == ("X", "5")
    assert LETTER_NAMES["Y"] == "i dài"


def test_recall_and_counter_reading() -> None:
    callout = build_callout("C024", 15, recall=True)
    assert callout.speech == "Xin nhắc lại, mời công dân có số thứ tự xê hai mươi tư, đến quầy số mười lăm."
    assert callout.display == "Xin nhắc lại: mời công dân có số thứ tự C024 đến quầy số 15"


@pytest.mark.parametrize("ticket", ["", "A", "ÂB12", "A1234567", "ABCD1", "12A", "A 0 1"])
def test_invalid_tickets(ticket: str) -> None:
    with pytest.raises(InvalidInput):
        build_callout(ticket, 1)


@pytest.mark.parametrize("counter", [0, -1, 1000, True])
def test_invalid_counters(counter: int) -> None:
    with pytest.raises(InvalidInput):
        build_callout("A1", counter)


# --- speech ------------------------------------------------------------------------------------------


def test_chime_is_two_tones() -> None:
    ding = chime(RATE)
    assert ding.dtype == np.int16 and 1.2 < ding.size / RATE < 1.5
    assert abs(peak_hz(ding[: int(0.4 * RATE)]) - 659.25) < 5  # "ding"
    assert abs(peak_hz(ding[int(0.6 * RATE) :]) - 523.25) < 5  # "dong"
    assert abs(int(ding[0])) < 200  # soft attack, no click


async def test_espeak_renders_audible_speech_of_plausible_length(tmp_path: Path) -> None:
    synth = EspeakSynth(tmp_path / "cache")
    callout = build_callout("A012", 3)
    pcm = await synth.synthesize(callout)
    assert pcm.dtype == np.int16 and synth.sample_rate == RATE
    assert rms(pcm) > 1000  # clearly not silence (full scale is 32767)
    words = len(callout.speech.split())  # 13 syllables
    seconds = pcm.size / RATE
    assert 0.2 * words < seconds < 0.9 * words, seconds
    assert synth.renders == 1 and synth.cache_hits == 0


async def test_espeak_cache_hit_does_not_run_espeak(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    synth = EspeakSynth(cache)
    first = await synth.render("Mời công dân có số thứ tự bê năm")
    files = sorted(cache.iterdir())
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    second = await synth.render("Mời công dân có số thứ tự bê năm")
    assert synth.renders == 1 and synth.cache_hits == 1
    assert np.array_equal(first, second)
    assert sorted(cache.iterdir()) == files and files[0].stat().st_mtime_ns == stamp

    # A fresh synthesiser whose espeak-ng does not even exist still speaks a cached phrase…
    offline = EspeakSynth(cache, binary=str(tmp_path / "no-espeak"))
    assert np.array_equal(await offline.render("Mời công dân có số thứ tự bê năm"), first)
    # …and fails clearly for a new one.
    with pytest.raises(SpeechError):
        await offline.render("quầy số hai")
    # Different voice settings are a different cache entry.
    slower = EspeakSynth(cache, EspeakVoice(rate=100))
    assert slower.cache_path("quầy số hai") != synth.cache_path("quầy số hai")
    assert (await slower.render("Mời công dân có số thứ tự bê năm")).size > first.size


async def test_espeak_cache_is_bounded(tmp_path: Path) -> None:
    synth = EspeakSynth(tmp_path / "cache", max_cache_files=2)
    for counter in ("một", "hai", "ba"):
        await synth.render(f"quầy số {counter}")
    assert len(list((tmp_path / "cache").iterdir())) == 2
    assert synth.cache_path("quầy số ba").exists()


def _recording(freq: float, seconds: float = 0.2) -> Pcm:
    """A stand-in for a recorded word: a tone with silence around it, at a recorder's 44.1 kHz."""
    rate = 44_100
    t = np.arange(int(seconds * rate)) / rate
    tone = np.rint(np.sin(2 * np.pi * freq * t) * 12_000).astype(np.int16)
    pad = np.zeros(int(0.1 * rate), dtype=np.int16)
    return np.concatenate([pad, tone, pad])


async def test_clip_pack_uses_recordings_and_falls_back_to_espeak(tmp_path: Path) -> None:
    pack = tmp_path / "pack"
    for folder in ("phrases", "letters", "words"):
        (pack / folder).mkdir(parents=True)
    write_wav(pack / "phrases" / "moi_cong_dan.wav", _recording(300, 0.5), 44_100)
    write_wav(pack / "letters" / "A.wav", _recording(400), 44_100)
    write_wav(pack / "words" / "mười.wav", _recording(500), 44_100)
    write_wav(pack / "words" / "hai.wav", _recording(600), 44_100)
    espeak = EspeakSynth(tmp_path / "cache")
    synth = ClipPackSynth(pack, espeak)

    pcm = await synth.synthesize(build_callout("A012", 3))
    # missing: phrases/den_quay_so and words/ba → spoken by espeak-ng, part by part
    assert synth.fallbacks == 2 and espeak.renders == 2
    # The recordings come first, in order, trimmed of their silence: 300 Hz phrase, then "a", "mười", "hai".
    start = int(0.05 * RATE)
    assert abs(peak_hz(pcm[start : start + int(0.3 * RATE)]) - 300) < 10
    assert rms(pcm) > 1000
    # the same call-out again is served from memory and the espeak cache
    again = await synth.synthesize(build_callout("A012", 3))
    assert np.array_equal(pcm, again) and espeak.renders == 2


# --- announcer ---------------------------------------------------------------------------------------


class FailOnceSink:
    """A loudspeaker that is unplugged for the first call-out, then writes to a WavFileSink."""

    def __init__(self, inner: WavFileSink) -> None:
        self.inner = inner
        self.failed = False

    async def play(self, pcm: Pcm, sample_rate: int) -> None:
        if not self.failed:
            self.failed = True
            raise AudioDeviceError("Không tìm thấy loa")
        await self.inner.play(pcm, sample_rate)


async def _run_until_idle(announcer: Announcer) -> None:
    task = asyncio.create_task(announcer.run())
    try:
        await asyncio.wait_for(announcer.join(), 30)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_two_callouts_play_in_order_without_overlap(tmp_path: Path) -> None:
    sink = WavFileSink(tmp_path / "played")
    synth = EspeakSynth(tmp_path / "cache")
    config = AnnouncerConfig(volume=0.5, repeat=2, gap_s=0.5)
    announcer = Announcer(sink, synth, config, clock=lambda: at_local(10))
    first = announcer.announce("A012", 3)
    second = announcer.announce("B105", 12)
    assert first.display == "Mời công dân có số thứ tự A012 đến quầy số 3"
    await _run_until_idle(announcer)

    assert [clip.path.name for clip in sink.played] == ["0001.wav", "0002.wav"]
    assert sink.played[0].ended <= sink.played[1].started
    assert announcer.played == 2 and announcer.last_text == second.display

    ding = np.rint(chime(RATE) * 0.5).astype(np.int16)
    pause = int(config.chime_pause_s * RATE)
    gap = int(config.gap_s * RATE)
    for clip, callout in zip(sink.played, (first, second), strict=True):
        pcm, rate = read_wav(clip.path)
        assert rate == RATE
        assert np.array_equal(pcm[: ding.size], ding)  # the chime comes first
        assert not pcm[ding.size : ding.size + pause].any()
        sentence = np.rint((await synth.synthesize(callout)) * 0.5).astype(np.int16)
        body = pcm[ding.size + pause :]
        assert body.size == 2 * sentence.size + gap
        assert np.array_equal(body[: sentence.size], sentence)  # this call-out's own words, in order
        assert np.array_equal(body[sentence.size + gap :], sentence)  # said twice
        assert rms(sentence) > 500


async def test_quiet_hours_skip_audio_but_keep_text(tmp_path: Path) -> None:
    now = [at_local(22, 30)]
    sink = WavFileSink(tmp_path / "played")
    synth = EspeakSynth(tmp_path / "cache")
    config = AnnouncerConfig(quiet_start=time(22, 0), quiet_end=time(6, 0))
    announcer = Announcer(sink, synth, config, clock=lambda: now[0])
    callout = announcer.announce("C7", 2)
    await _run_until_idle(announcer)
    assert announcer.last_text == callout.display and announcer.skipped_quiet == 1
    assert sink.played == [] and synth.renders == 0 and not (tmp_path / "played").exists()

    now[0] = at_local(6, 0)  # the quiet range ends at 06:00 sharp
    announcer.announce("C8", 2)
    await _run_until_idle(announcer)
    assert len(sink.played) == 1 and announcer.played == 1


def test_quiet_hours_ranges() -> None:
    lunch = AnnouncerConfig(quiet_start=time(11, 30), quiet_end=time(13, 0))
    assert lunch.is_quiet(at_local(12, 0)) and lunch.is_quiet(at_local(11, 30))
    assert not lunch.is_quiet(at_local(13, 0)) and not lunch.is_quiet(at_local(9, 0))
    # naive is UTC: 05:00 UTC is 12:00 in Hồ Chí Minh City
    assert lunch.is_quiet(datetime(2026, 1, 1, 5, 0))
    night = AnnouncerConfig(quiet_start=time(22, 0), quiet_end=time(6, 0))
    assert night.is_quiet(at_local(23)) and night.is_quiet(at_local(2)) and not night.is_quiet(at_local(12))
    assert not AnnouncerConfig().is_quiet(at_local(3))
    with pytest.raises(KioskError):
        AnnouncerConfig(volume=1.5)
    with pytest.raises(KioskError):
        AnnouncerConfig(timezone="Asia/Sai_Gon")


async def test_full_queue_drops_oldest(tmp_path: Path) -> None:
    sink = WavFileSink(tmp_path / "played")
    announcer = Announcer(
        sink, EspeakSynth(tmp_path / "cache"), AnnouncerConfig(queue_size=2, repeat=1), clock=lambda: at_local(9)
    )
    for n in range(1, 6):
        announcer.announce(f"A{n:03d}", 1)
    assert announcer.dropped == 3 and announcer.pending == 2
    await _run_until_idle(announcer)
    assert announcer.played == 2 and announcer.last_callout is not None
    assert announcer.last_callout.ticket == "A005"


async def test_a_failed_speaker_does_not_stop_the_next_callout(tmp_path: Path) -> None:
    inner = WavFileSink(tmp_path / "played")
    announcer = Announcer(
        FailOnceSink(inner), EspeakSynth(tmp_path / "cache"), AnnouncerConfig(repeat=1), clock=lambda: at_local(9)
    )
    announcer.announce("A1", 1)
    announcer.announce("A2", 2)
    await _run_until_idle(announcer)
    assert announcer.failed == 1 and announcer.played == 1 and len(inner.played) == 1
    assert announcer.last_text == "Mời công dân có số thứ tự A2 đến quầy số 2"


def test_announce_rejects_bad_input_before_queueing(tmp_path: Path) -> None:
    announcer = Announcer(WavFileSink(tmp_path), EspeakSynth(tmp_path / "cache"))
    with pytest.raises(InvalidInput):
        announcer.announce("??", 1)
    assert announcer.pending == 0
