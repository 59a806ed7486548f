"""QR decoders behind one small interface: zxing-cpp, zbar, and the kiosk's measured pipeline.

``bench/qr.py`` measures all three on real photos in one run; the pipeline's design follows those
figures: one cheap zxing-cpp pass on every frame, and the fall-back passes only on a frame where the
first pass saw a likely symbol, so frames with nothing in them cost what raw zxing-cpp costs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from ctypes import c_char_p, c_void_p, cast, string_at
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt
import zxingcpp
from pyzbar import pyzbar
from pyzbar import wrapper as zbar

from devices import imaging

logger = logging.getLogger(__name__)

Point = tuple[int, int]
Image = npt.NDArray[np.uint8]

# zbar >= 0.23.1 ZBAR_CFG_BINARY: hand back the symbol's bytes as they are, without zbar's charset guess
# (which turns UTF-8 Vietnamese text into Shift_JIS or Latin-1 mojibake). pyzbar 0.1.9's enum predates it.
_ZBAR_CFG_BINARY = 4
# Text decoding of raw bytes when no ECI says otherwise: UTF-8 is what the ID card and our own codes
# use; Shift_JIS is the de-facto default of Japanese encoders; ISO-8859-1 is the QR standard's default.
_CHARSETS = ("utf-8", "shift_jis", "iso-8859-1")


@dataclass(frozen=True, slots=True)
class Decoded:
    """One decoded QR symbol. ``text`` may hold personal data: never log it."""

    text: str
    raw: bytes
    decoder: str
    points: tuple[Point, ...]


class Decoder(Protocol):
    """Finds and decodes QR codes in a BGR or grayscale frame."""

    name: str

    def decode(self, frame: Image) -> list[Decoded]: ...


def bytes_to_text(raw: bytes) -> str:
    """Text of a QR byte payload: UTF-8 when valid, else Shift_JIS, else ISO-8859-1 (always succeeds)."""
    for charset in _CHARSETS:
        try:
            return raw.decode(charset)
        except UnicodeDecodeError:
            continue
    return raw.decode("iso-8859-1")  # pragma: no cover - iso-8859-1 decodes every byte string


def _points(position: zxingcpp.Position) -> tuple[Point, ...]:
    return tuple(
        (int(p.x), int(p.y))
        for p in (position.top_left, position.top_right, position.bottom_right, position.bottom_left)
    )


_QR_FORMATS = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)


def _zxing(
    gray: Image,
    *,
    binarizer: zxingcpp.Binarizer = zxingcpp.Binarizer.LocalAverage,
    return_errors: bool = False,
    try_downscale: bool = True,
    try_invert: bool = True,
) -> list[zxingcpp.Barcode]:
    return list(
        zxingcpp.read_barcodes(
            gray,
            formats=_QR_FORMATS,
            text_mode=zxingcpp.TextMode.Plain,
            binarizer=binarizer,
            return_errors=return_errors,
            try_downscale=try_downscale,
            try_invert=try_invert,
        )
    )


def _from_zxing(barcode: zxingcpp.Barcode, name: str, scale: float = 1.0, offset: Point = (0, 0)) -> Decoded:
    pts = tuple((round(x / scale) + offset[0], round(y / scale) + offset[1]) for x, y in _points(barcode.position))
    return Decoded(text=barcode.text, raw=bytes(barcode.bytes), decoder=name, points=pts)


class ZxingDecoder:
    """zxing-cpp, QR codes only, library defaults otherwise (its own rotate/downscale/invert tries)."""

    name = "zxing"

    def decode(self, frame: Image) -> list[Decoded]:
        gray = imaging.to_gray(frame)
        return [_from_zxing(b, self.name) for b in _zxing(gray) if b.valid]


class ZbarDecoder:
    """zbar through pyzbar's ctypes wrapper, QR codes only.

    zbar is asked for the symbol's raw bytes (binary mode) and the text is decoded here, UTF-8 first:
    in its default mode zbar 0.23 guesses a charset and turns UTF-8 Vietnamese ("Lê Lợi", "Bến Thành")
    into Shift_JIS or Latin-1 mojibake. pyzbar.decode() is not used because it also crashes on symbols
    whose orientation zbar reports as unknown (-1).
    """

    name = "zbar"

    def decode(self, frame: Image) -> list[Decoded]:
        gray = np.ascontiguousarray(imaging.to_gray(frame))
        height, width = gray.shape
        pixels = gray.tobytes()
        found: list[Decoded] = []
        with pyzbar._image_scanner() as scanner:
            zbar.zbar_image_scanner_set_config(scanner, zbar.ZBarSymbol.NONE, zbar.ZBarConfig.CFG_ENABLE, 0)
            zbar.zbar_image_scanner_set_config(scanner, zbar.ZBarSymbol.QRCODE, zbar.ZBarConfig.CFG_ENABLE, 1)
            zbar.zbar_image_scanner_set_config(scanner, zbar.ZBarSymbol.QRCODE, _ZBAR_CFG_BINARY, 1)
            with pyzbar._image() as image:
                zbar.zbar_image_set_format(image, pyzbar._FOURCC["L800"])
                zbar.zbar_image_set_size(image, width, height)
                zbar.zbar_image_set_data(image, cast(c_char_p(pixels), c_void_p), len(pixels), None)
                if zbar.zbar_scan_image(scanner, image) < 0:
                    return []
                symbol = zbar.zbar_image_first_symbol(image)
                while symbol:
                    # Only QR is enabled, so every symbol here is a QR code.
                    raw = string_at(zbar.zbar_symbol_get_data(symbol), zbar.zbar_symbol_get_data_length(symbol))
                    count = zbar.zbar_symbol_get_loc_size(symbol)
                    pts = tuple(
                        (int(zbar.zbar_symbol_get_loc_x(symbol, i)), int(zbar.zbar_symbol_get_loc_y(symbol, i)))
                        for i in range(count)
                    )
                    found.append(Decoded(text=bytes_to_text(raw), raw=raw, decoder=self.name, points=pts))
                    symbol = zbar.zbar_symbol_next(symbol)
        return found


@dataclass(slots=True)
class PipelineStats:
    """What the pipeline did, for telemetry and the bench."""

    frames: int = 0
    first_pass_hits: int = 0
    fallback_frames: int = 0
    fallback_hits: int = 0
    budget_exhausted: int = 0


class PipelineDecoder:
    """zxing-cpp first; fall-back passes only when the frame likely holds a QR symbol.

    Pass 1 is exactly raw zxing-cpp (so the pipeline never reads less than it) with
    ``return_errors=True``. A frame "likely holds a symbol" when zxing detected one it could not decode
    (checksum or format error), or when a cheap finder-pattern check (``has_finder_patterns``, ~0.3 ms
    on 1280x720) sees two or more square eyes; on a frame of ``SMALL_SIDE`` px or less the check runs
    again on a sharpened 2x enlargement, where modules of 2-3 px have separate rings. Only then do the
    fall-backs run, in the order of what they rescued on the bench's tune half (real photos and their
    degraded copies), until one decodes or ``budget_ms`` (counted from the frame's start) is spent:
    the sharpened 2x enlargement (small or soft modules), a plain 2x upscale, an unsharp mask, the
    global-histogram binarizer (uneven light), zbar (another detector), and a 0.6x softened copy
    (textured or artistic modules). Frames over 1280 px skip the enlargements. Left out: passes that
    rescued little or nothing on the tune half (CLAHE, contrast stretching, Otsu or adaptive thresholds
    fed to zxing, a plain 0.5x copy, the fixed-threshold binarizer), and zbar on an Otsu-binarized frame,
    which gave a wrong answer in an earlier bench: a wrong check-in is worse than a miss.
    """

    name = "pipeline"

    def __init__(self, budget_ms: float = 60.0) -> None:
        self.budget_ms = budget_ms
        self.stats = PipelineStats()
        self._zbar = ZbarDecoder()

    def decode(self, frame: Image) -> list[Decoded]:
        start = time.perf_counter()
        self.stats.frames += 1
        gray = np.ascontiguousarray(imaging.to_gray(frame))
        first = _zxing(gray, return_errors=True)
        good = [_from_zxing(b, self.name) for b in first if b.valid]
        if good:
            self.stats.first_pass_hits += 1
            return good
        small = max(gray.shape) <= SMALL_SIDE
        enlarged = _Lazy(lambda: imaging.sharpen(imaging.resize(gray, 2.0), 2.5))
        if not first and not has_finder_patterns(gray) and not (
            small and has_finder_patterns(enlarged.get(), 2 * SMALL_SIDE, blur=False)
        ):
            return []
        self.stats.fallback_frames += 1
        deadline = start + self.budget_ms / 1000.0
        for attempt in self._fallbacks(gray, enlarged):
            if time.perf_counter() >= deadline:
                self.stats.budget_exhausted += 1
                break
            found = attempt()
            if found:
                self.stats.fallback_hits += 1
                return found
        return []

    def _fallbacks(self, gray: Image, enlarged: _Lazy) -> list[Callable[[], list[Decoded]]]:
        name = self.name

        def enlarged_sharp() -> list[Decoded]:
            # Small or soft modules: twice the pixels per module, edges restored by an unsharp mask.
            return [_from_zxing(b, name, 2.0) for b in _zxing(enlarged.get(), try_downscale=False)]

        def smoothed_smaller() -> list[Decoded]:
            # Textured or artistic modules (a photo inside the code, halftone print): a smaller, softened copy
            # averages the texture away so each module is one tone again.
            small = imaging.gaussian_blur(imaging.resize(gray, 0.6), 1.0)
            return [_from_zxing(b, name, 0.6) for b in _zxing(small, try_downscale=False)]

        def sharpened() -> list[Decoded]:
            return [_from_zxing(b, name) for b in _zxing(imaging.sharpen(gray, 1.0))]

        def other_binarizer() -> list[Decoded]:
            return [_from_zxing(b, name) for b in _zxing(gray, binarizer=zxingcpp.Binarizer.GlobalHistogram)]

        def with_zbar() -> list[Decoded]:
            return [Decoded(d.text, d.raw, name, d.points) for d in self._zbar.decode(gray)]

        def upscaled() -> list[Decoded]:
            scale = 2.0
            big = imaging.resize(gray, scale)
            return [_from_zxing(b, name, scale) for b in _zxing(big, try_downscale=False)]

        # In the order of what each rescued on the bench's tune half (degraded copies included).
        if max(gray.shape) > 1280:
            return [other_binarizer, sharpened, with_zbar, smoothed_smaller]
        return [enlarged_sharp, upscaled, sharpened, other_binarizer, with_zbar, smoothed_smaller]


# A frame this small (longest side, px) gets the finder-pattern check a second time on a sharpened 2x
# enlargement: codes in it have modules of 2-3 px, whose finder rings merge at the original scale. Cheap
# because the frame is small; never applies to the kiosk camera's 1280x720 frames.
SMALL_SIDE = 320


class _Lazy:
    """An image computed on first use and kept for the rest of the frame (gate and fall-back share it)."""

    def __init__(self, make: Callable[[], Image]) -> None:
        self._make = make
        self._value: Image | None = None

    def get(self) -> Image:
        if self._value is None:
            self._value = self._make()
        return self._value


# Decode-time buckets (seconds): a no-code frame costs ~2 ms, a fall-back frame up to the 60 ms budget.
DECODE_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class DurationHistogram:
    """Cumulative histogram of durations in seconds, Prometheus style (``le`` upper bounds, then +Inf).

    Filled from the decode thread and read from the event loop (telemetry, ``/metrics``), hence the lock.
    """

    def __init__(self, bounds: tuple[float, ...] = DECODE_BUCKETS_S) -> None:
        if list(bounds) != sorted(set(bounds)):
            raise ValueError("histogram bounds must be strictly increasing")
        self.bounds = bounds
        self._counts = [0] * (len(bounds) + 1)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        index = next((i for i, bound in enumerate(self.bounds) if seconds <= bound), len(self.bounds))
        with self._lock:
            self._counts[index] += 1
            self._sum += seconds

    def snapshot(self) -> dict[str, Any]:
        """``{"buckets": {"0.001": n, …, "+Inf": count}, "count", "sum"}``, counts cumulative (JSON-safe)."""
        with self._lock:
            counts, total = list(self._counts), self._sum
        buckets: dict[str, int] = {}
        running = 0
        for bound, n in zip([*(repr(b) for b in self.bounds), "+Inf"], counts, strict=True):
            running += n
            buckets[bound] = running
        return {"buckets": buckets, "count": running, "sum": round(total, 6)}


class TimedDecoder:
    """Any decoder, with the wall time of every ``decode`` call recorded in a histogram."""

    def __init__(self, inner: Decoder, histogram: DurationHistogram | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.histogram = histogram or DurationHistogram()

    def decode(self, frame: Image) -> list[Decoded]:
        start = time.perf_counter()
        try:
            return self.inner.decode(frame)
        finally:
            self.histogram.observe(time.perf_counter() - start)


def has_finder_patterns(gray: Image, work_width: int = 320, *, blur: bool = True) -> bool:
    """Cheap check for QR finder patterns: two or more filled squares with two levels nested inside.

    A finder eye is ring / ring / centre, three nested contours, whichever the polarity (a light-on-dark
    code nests the same way one level down). Runs on the frame subsampled to about ``work_width`` pixels
    (plain striding: an area resize costs more than the rest of the check) with a global Otsu threshold.
    On the bench it costs about 0.3 ms on a 1280x720 frame and fired on no photo without a code.
    """
    step = max(1, gray.shape[1] // work_width)
    work = np.ascontiguousarray(gray[::step, ::step])
    if blur:
        # The blur merges speckle of textured scenes (hundreds of tiny contours, the check's main cost). The
        # enlarged check of a small frame goes without: there it would merge the rings of small eyes.
        work = np.asarray(cv2.GaussianBlur(work, (3, 3), 0), dtype=np.uint8)
    _, binary = cv2.threshold(work, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    contours, hierarchy = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return False
    tree = hierarchy[0]
    child = tree[:, 2]
    has_child = child >= 0
    grandchild = np.where(has_child, tree[np.where(has_child, child, 0), 2], -1)
    candidates = np.flatnonzero(grandchild >= 0)
    if len(candidates) < 2:
        return False
    squares = 0
    for i in candidates:
        _, _, w, h = cv2.boundingRect(contours[int(i)])
        # An eye is a filled square (seen at an angle, a quadrilateral that fills most of its box);
        # textures in photos nest too, but as ragged blobs that fill half their box or less.
        if w >= 4 and h >= 4 and 0.5 < w / h < 2.0 and cv2.contourArea(contours[int(i)]) >= 0.6 * w * h:
            squares += 1
            if squares >= 2:
                return True
    return False
