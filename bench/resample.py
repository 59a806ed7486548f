"""Resampler quality and cost: libswresample (devices.resample) against linear interpolation (the old code).

    python bench/resample.py

For each conversion the speech path makes (espeak-ng's 22 050 Hz → 48 kHz, clip packs at 16/44.1 kHz →
48 kHz, and a 48 kHz clip down to 16 kHz), a 1 s tone is resampled and everything in the output spectrum
more than 450 Hz away from the tone is summed (Hann window, edges cut): images when going up, aliases when
going down. Lower is better; -90 dB is about the int16 noise floor. Time is the median of 5 runs per second
of audio.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devices.resample import resample


def linear(pcm: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    out_len = max(1, round(pcm.size * to_rate / from_rate))
    positions = np.arange(out_len, dtype=np.float64) * (from_rate / to_rate)
    values = np.interp(positions, np.arange(pcm.size, dtype=np.float64), pcm.astype(np.float64))
    return np.clip(np.rint(values), -32768, 32767).astype(np.int16)


def tone(freq: float, rate: int) -> np.ndarray:
    t = np.arange(rate) / rate
    return np.rint(np.sin(2 * np.pi * freq * t) * 0.5 * 32767).astype(np.int16)


def unwanted_db(pcm: np.ndarray, rate: int, freq: float) -> float:
    body = pcm.astype(np.float64)[rate // 20 : -rate // 20]
    power = np.abs(np.fft.rfft(body * np.hanning(body.size))) ** 2
    freqs = np.fft.rfftfreq(body.size, 1 / rate)
    wanted = power[np.abs(freqs - freq) <= 150].sum()
    rest = power[np.abs(freqs - freq) > 450].sum()
    return float(10 * np.log10(rest / wanted))


def timed(fn: Callable[..., object], *args: object) -> float:
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        fn(*args)
        runs.append((time.perf_counter() - t0) * 1000)
    return statistics.median(runs)


def main() -> int:
    cases = [(22_050, 48_000, 5000.0), (22_050, 48_000, 9000.0), (16_000, 48_000, 3000.0),
             (44_100, 48_000, 12_000.0), (48_000, 16_000, 1000.0)]
    print(f"{'conversion':24s} {'tone Hz':>8s} {'linear dB':>10s} {'swr dB':>8s} {'linear ms/s':>12s} {'swr ms/s':>9s}")
    for src, dst, freq in cases:
        pcm = tone(freq, src)
        if src > dst:  # going down: add a whistle above the new Nyquist frequency that must not fold back
            pcm = np.clip(pcm.astype(np.int32) + tone(dst * 0.75, src), -32768, 32767).astype(np.int16)
        lin, swr = linear(pcm, src, dst), resample(pcm, src, dst)
        label = f"{src} → {dst}"
        print(f"{label:24s} {freq:8.0f} {unwanted_db(lin, dst, freq):10.1f} {unwanted_db(swr, dst, freq):8.1f}"
              f" {timed(linear, pcm, src, dst):12.2f} {timed(resample, pcm, src, dst):9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
