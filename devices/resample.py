"""Sample-rate conversion of int16 mono PCM through FFmpeg's libswresample (PyAV's ``AudioResampler``).

espeak-ng speaks at 22 050 Hz, clip packs come at any rate, and the loudspeaker, the call track and the
WAV sink all run at 48 kHz. Linear interpolation leaves images of every tone about 20 dB down (an
audible metallic hiss on sibilants) and folds anything above the new Nyquist frequency back into the
band when going down; libswresample's windowed-sinc filter puts both near the int16 noise floor.

This is PyAV's only use outside aiortc's adapter (ruff ``TID251`` keeps ``av`` here and in
``agent/calls/rtc.py``). The conversion is stateless: each call resamples a whole clip and flushes the
filter, so the output starts at the same instant as the input (libswresample compensates its own
delay) and has exactly ``round(n * to_rate / from_rate)`` samples. Blocking: a few milliseconds per
second of audio, so callers on the event loop run it in a worker thread with the rest of the clip work.
"""

from __future__ import annotations

import av
import numpy as np
import numpy.typing as npt

Pcm = npt.NDArray[np.int16]


def resample(pcm: Pcm, from_rate: int, to_rate: int) -> Pcm:
    """Resample int16 mono PCM from ``from_rate`` to ``to_rate`` Hz with a band-limited filter."""
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError("sample rates must be positive")
    if from_rate == to_rate or pcm.size == 0:
        return pcm
    out_len = max(1, round(pcm.size * to_rate / from_rate))
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(pcm, dtype=np.int16).reshape(1, -1), format="s16", layout="mono"
    )
    frame.sample_rate = from_rate
    resampler = av.AudioResampler(format="s16", layout="mono", rate=to_rate)
    # resample(None) flushes the filter's tail; without it the last few milliseconds would be lost.
    chunks = [*resampler.resample(frame), *resampler.resample(None)]
    parts = [np.asarray(chunk.to_ndarray(), dtype=np.int16).reshape(-1) for chunk in chunks]
    out = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
    # libswresample rounds its flushed tail to whole samples; pin the length callers rely on.
    if out.size >= out_len:
        return np.ascontiguousarray(out[:out_len])
    return np.concatenate([out, np.zeros(out_len - out.size, dtype=np.int16)])
