"""Offline speech for call-outs: espeak-ng's Vietnamese voice, or a ward's own recorded clips.

Everything comes out as int16 mono PCM at one fixed sample rate (48 kHz by default, what USB
speakers and the call audio use), so the announcer can join chime and speech without caring where
they came from. Nothing is ever downloaded.

``EspeakSynth`` runs ``espeak-ng -v vi -w FILE`` (text on stdin, so a text starting with "-" is not
an option) and caches the result, resampled, as ``CACHE_DIR/<sha256>.wav``; the hash covers the text,
the voice settings and the output rate, so changing the rate or the voice never plays a stale file.
Call-outs repeat a lot (the same counters, the same few hundred numbers a day), so after the first
morning most call-outs are a file read.

``ClipPackSynth`` speaks with recordings a ward makes itself (see its docstring for the folder layout)
and falls back to espeak-ng, part by part, for any recording it lacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import unicodedata
import wave
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from agent.errors import KioskError
from agent.voice.phrases import CallOut, SpeechPart
from devices.audio import Pcm, read_wav, resample, write_wav

logger = logging.getLogger(__name__)

SAMPLE_RATE = 48_000
# Bump when the rendering pipeline changes in a way that makes old cache files wrong.
_CACHE_FORMAT = 2  # 2: band-limited resampling (1 was linear interpolation, with audible images)


class SpeechError(KioskError):
    """Speech could not be rendered (espeak-ng missing, failed or timed out)."""

    code = "speech_failed"
    http_status = 503


class SpeechSynth(Protocol):
    """Turns a call-out into PCM at ``sample_rate``."""

    sample_rate: int

    async def synthesize(self, callout: CallOut) -> Pcm: ...


@dataclass(frozen=True)
class EspeakVoice:
    """espeak-ng settings. The default rate is slower than espeak's 175 words/min: the listeners are
    often elderly and the hall is noisy."""

    voice: str = "vi"  # also "vi-vn-x-south", "vi-vn-x-central"
    rate: int = 135  # words per minute (-s)
    pitch: int = 45  # 0..99 (-p)
    amplitude: int = 120  # 0..200 (-a)
    word_gap: int = 1  # extra pause between words, in 10 ms units (-g)


def silence(seconds: float, sample_rate: int = SAMPLE_RATE) -> Pcm:
    return np.zeros(max(0, round(seconds * sample_rate)), dtype=np.int16)


def chime(sample_rate: int = SAMPLE_RATE, *, level: float = 0.5) -> Pcm:
    """A two-tone "ding-dong" (E5 then C5, bell-like decay), about 1.3 s, peak at ``level`` of full scale."""
    note_s, second_at = 0.9, 0.45
    total = np.zeros(round((second_at + note_s) * sample_rate), dtype=np.float64)
    t = np.arange(round(note_s * sample_rate), dtype=np.float64) / sample_rate
    attack = np.minimum(1.0, t / 0.005)  # 5 ms attack: no click
    envelope = attack * np.exp(-t * 4.0)
    for start_s, freq in ((0.0, 659.25), (second_at, 523.25)):
        # Fundamental plus a quieter octave gives the "bell" colour without harshness.
        tone = np.sin(2 * np.pi * freq * t) + 0.3 * np.sin(2 * np.pi * 2 * freq * t)
        start = round(start_s * sample_rate)
        total[start : start + t.size] += tone * envelope
    total *= level / np.abs(total).max()
    out: Pcm = np.rint(total * 32767.0).astype(np.int16)
    return out


class EspeakSynth:
    """Renders text with espeak-ng, cached per (text, voice, sample rate) in ``cache_dir``.

    ``renders`` counts espeak-ng runs and ``cache_hits`` cached reads (telemetry, tests).
    """

    def __init__(
        self,
        cache_dir: Path,
        voice: EspeakVoice = EspeakVoice(),
        *,
        sample_rate: int = SAMPLE_RATE,
        binary: str = "espeak-ng",
        timeout_s: float = 15.0,
        max_cache_files: int = 500,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        # A 5 s call-out is ~0.5 MB at 48 kHz; past this many files the oldest are deleted.
        self.max_cache_files = max_cache_files
        self.voice = voice
        self.sample_rate = sample_rate
        self.binary = binary
        self.timeout_s = timeout_s
        self.renders = 0
        self.cache_hits = 0

    def cache_path(self, text: str) -> Path:
        key = json.dumps(
            {
                "text": unicodedata.normalize("NFC", text),
                "voice": asdict(self.voice),
                "rate": self.sample_rate,
                "format": _CACHE_FORMAT,
            },
            sort_keys=True,
            ensure_ascii=False,
        )
        return self.cache_dir / f"{hashlib.sha256(key.encode()).hexdigest()}.wav"

    async def synthesize(self, callout: CallOut) -> Pcm:
        return await self.render(callout.speech)

    async def render(self, text: str) -> Pcm:
        """``text`` spoken, as int16 mono PCM at ``sample_rate``."""
        text = unicodedata.normalize("NFC", text).strip()
        if not text:
            return silence(0.0, self.sample_rate)
        path = self.cache_path(text)
        cached = await asyncio.to_thread(_read_cached, path, self.sample_rate)
        if cached is not None:
            self.cache_hits += 1
            return cached
        await asyncio.to_thread(self.cache_dir.mkdir, parents=True, exist_ok=True)
        raw_path = path.with_name(f".{path.stem}.{os.getpid()}.espeak.wav")
        try:
            await self._run_espeak(text, raw_path)
            pcm = await asyncio.to_thread(self._convert_and_store, raw_path, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                raw_path.unlink()
        self.renders += 1
        return pcm

    async def _run_espeak(self, text: str, out: Path) -> None:
        v = self.voice
        args = ["-v", v.voice, "-s", str(v.rate), "-p", str(v.pitch), "-a", str(v.amplitude)]
        args += ["-g", str(v.word_gap), "-b", "1", "-w", str(out), "--stdin"]
        try:
            proc = await asyncio.create_subprocess_exec(
                self.binary,
                *args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise SpeechError(f"Không chạy được {self.binary} (cài gói espeak-ng): {exc}") from exc
        try:
            _, stderr = await asyncio.wait_for(proc.communicate(text.encode()), self.timeout_s)
        except TimeoutError as exc:
            raise SpeechError(f"{self.binary} không trả lời sau {self.timeout_s:.0f} s") from exc
        finally:
            if proc.returncode is None:  # timed out or cancelled: do not leave espeak-ng running
                proc.kill()
                await asyncio.shield(proc.wait())
        if proc.returncode != 0:
            detail = stderr.decode(errors="replace").strip()[:200]
            raise SpeechError(f"{self.binary} lỗi (mã {proc.returncode}): {detail}")

    def _convert_and_store(self, raw_path: Path, path: Path) -> Pcm:
        try:
            pcm, rate = read_wav(raw_path)
        except (OSError, EOFError, wave.Error, ValueError) as exc:
            raise SpeechError(f"{self.binary} không tạo ra tệp WAV đọc được: {exc}") from exc
        pcm = resample(pcm, rate, self.sample_rate)
        write_wav(path, pcm, self.sample_rate)
        self._prune(keep=path)
        return pcm

    def _prune(self, keep: Path) -> None:
        # Dot-files are espeak-ng's output still being converted, not cache entries.
        files = [f for f in self.cache_dir.glob("*.wav") if not f.name.startswith(".") and f != keep]
        excess = len(files) + 1 - self.max_cache_files
        if excess <= 0:
            return
        files.sort(key=lambda f: f.stat().st_mtime_ns)
        for old in files[:excess]:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()


def _read_cached(path: Path, sample_rate: int) -> Pcm | None:
    try:
        pcm, rate = read_wav(path)
    except FileNotFoundError:
        return None
    except (OSError, EOFError, wave.Error, ValueError):
        logger.warning("speech cache file %s is unreadable; rendering again", path.name)
        return None
    return pcm if rate == sample_rate else resample(pcm, rate, sample_rate)


def trim_silence(pcm: Pcm, sample_rate: int, *, threshold: int = 500, margin_s: float = 0.02) -> Pcm:
    """Cut leading and trailing silence (below ``threshold``) from a recording, keeping a short margin."""
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > threshold)
    if loud.size == 0:
        return pcm[:0]
    margin = round(margin_s * sample_rate)
    return pcm[max(0, loud[0] - margin) : loud[-1] + 1 + margin]


class ClipPackSynth:
    """Speaks call-outs by joining recordings a ward made itself; espeak-ng fills any gap.

    Folder layout (WAV files, any sample rate, mono or stereo, 8/16/32-bit PCM; leading and trailing
    silence is trimmed, so recordings need not be cut precisely)::

        PACK/phrases/moi_cong_dan.wav   "mời công dân có số thứ tự"
        PACK/phrases/den_quay_so.wav    "đến quầy số"
        PACK/phrases/xin_nhac_lai.wav   "xin nhắc lại"          (recalls only)
        PACK/letters/A.wav … Z.wav, Đ.wav  letter names, file named by the upper-case letter
                                        (A "a", B "bê", L "e lờ", S "ét xì" …)
        PACK/words/<word>.wav           one number syllable per file, named by the word in lower
                                        case with its diacritics (NFC): không một hai ba bốn năm
                                        sáu bảy tám chín mười mươi mốt tư lăm linh trăm nghìn
                                        (and lẻ, ngàn, triệu if the office uses them)

    ``fallbacks`` counts parts spoken by espeak-ng because their recording is missing.
    """

    def __init__(
        self,
        pack_dir: Path,
        fallback: EspeakSynth,
        *,
        word_gap_s: float = 0.06,
        pause_s: float = 0.3,
    ) -> None:
        self.pack_dir = Path(pack_dir)
        self.fallback = fallback
        self.sample_rate = fallback.sample_rate
        self.word_gap_s = word_gap_s
        self.pause_s = pause_s
        self._clips: dict[Path, Pcm | None] = {}
        self.fallbacks = 0

    def clip_path(self, part: SpeechPart) -> Path | None:
        folder = {"phrase": "phrases", "letter": "letters", "word": "words"}.get(part.kind)
        if folder is None:
            return None
        return self.pack_dir / folder / f"{unicodedata.normalize('NFC', part.key)}.wav"

    def _load(self, path: Path) -> Pcm | None:
        try:
            pcm, rate = read_wav(path)
        except FileNotFoundError:
            return None
        except (OSError, EOFError, wave.Error, ValueError) as exc:
            logger.warning("clip %s is unreadable (%s); using espeak-ng instead", path, exc)
            return None
        pcm = trim_silence(resample(pcm, rate, self.sample_rate), self.sample_rate)
        return pcm if pcm.size else None

    async def _part(self, part: SpeechPart) -> Pcm:
        if part.kind == "pause":
            return silence(self.pause_s, self.sample_rate)
        path = self.clip_path(part)
        if path is not None:
            if path not in self._clips:
                self._clips[path] = await asyncio.to_thread(self._load, path)
            clip = self._clips[path]
            if clip is not None:
                return clip
        self.fallbacks += 1
        return trim_silence(await self.fallback.render(part.text), self.sample_rate)

    async def synthesize(self, callout: CallOut) -> Pcm:
        gap = silence(self.word_gap_s, self.sample_rate)
        pieces: list[Pcm] = []
        for part in callout.parts:
            if pieces:
                pieces.append(gap)
            pieces.append(await self._part(part))
        out: Pcm = np.concatenate(pieces) if pieces else silence(0.0, self.sample_rate)
        return out
