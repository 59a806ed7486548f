"""QR decoders on generated codes: the real zxing-cpp and zbar libraries, no fixtures from outside."""

from __future__ import annotations

import numpy as np
import pytest

from devices import imaging
from devices.decoders import (
    Decoder,
    PipelineDecoder,
    ZbarDecoder,
    ZxingDecoder,
    bytes_to_text,
    has_finder_patterns,
)

ID_CARD = "001099012345|123456789|Nguyễn Văn An|01011990|Nam|Số 1 Lê Lợi, Phường Bến Thành|15062021"
# Short Vietnamese strings that zbar's charset guess turns into Shift_JIS or Latin-1 mojibake.
MOJIBAKE_PRONE = ["Lê Lợi", "Quét mã QR tại đây", "Bến Thành", "Ưu tiên"]


def decoders() -> list[Decoder]:
    return [ZxingDecoder(), ZbarDecoder(), PipelineDecoder(budget_ms=200)]


def in_frame(code: imaging.Image, at: tuple[int, int] = (200, 100)) -> imaging.Image:
    """The code pasted into a 1280x720 camera-like BGR frame."""
    frame = np.full((720, 1280, 3), 180, dtype=np.uint8)
    h, w = code.shape[:2]
    frame[at[1] : at[1] + h, at[0] : at[0] + w] = imaging.to_bgr(code)
    return frame


@pytest.mark.parametrize("decoder", decoders(), ids=lambda d: d.name)
def test_vietnamese_id_card_text_is_decoded_identically(decoder: Decoder) -> None:
    frame = in_frame(imaging.qr_image(ID_CARD, module_px=5))
    found = decoder.decode(frame)
    assert [d.text for d in found] == [ID_CARD]
    assert found[0].raw == ID_CARD.encode("utf-8")
    assert found[0].decoder == decoder.name
    assert len(found[0].points) == 4


@pytest.mark.parametrize("text", MOJIBAKE_PRONE)
def test_zbar_and_zxing_agree_on_text_zbar_would_garble(text: str) -> None:
    frame = in_frame(imaging.qr_image(text, module_px=6))
    assert [d.text for d in ZbarDecoder().decode(frame)] == [text]
    assert [d.text for d in ZxingDecoder().decode(frame)] == [text]


@pytest.mark.parametrize("decoder", decoders(), ids=lambda d: d.name)
def test_blank_and_noise_frames_yield_nothing(decoder: Decoder) -> None:
    blank = np.zeros((720, 1280, 3), dtype=np.uint8)
    noise = np.random.default_rng(1).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    assert decoder.decode(blank) == []
    assert decoder.decode(noise) == []


def test_pipeline_reads_an_inverted_code() -> None:
    code = 255 - imaging.qr_image("LICH-HEN:A1B2C3", module_px=6)
    assert [d.text for d in PipelineDecoder().decode(in_frame(code))] == ["LICH-HEN:A1B2C3"]


def test_pipeline_tries_fallbacks_on_a_damaged_code_and_reports_nothing_wrong() -> None:
    code = imaging.qr_image("VE:A042-" + "X" * 60, module_px=6, ec_level="L").copy()
    h, w = code.shape
    code[h // 3 : h * 2 // 3, w // 4 : w * 3 // 4] = 255  # erased beyond what error correction repairs
    pipeline = PipelineDecoder(budget_ms=500)
    assert pipeline.decode(in_frame(code)) == []
    # The eyes are intact, so the frame went through the fall-backs (and none invented a reading).
    assert pipeline.stats.fallback_frames == 1
    assert pipeline.stats.fallback_hits == 0


def test_pipeline_skips_fallbacks_on_empty_frames() -> None:
    pipeline = PipelineDecoder()
    frame = np.full((720, 1280, 3), 90, dtype=np.uint8)
    assert pipeline.decode(frame) == []
    assert pipeline.stats.fallback_frames == 0


def test_finder_check_sees_codes_and_not_plain_frames() -> None:
    gray = imaging.to_gray(in_frame(imaging.qr_image("SO-THU-TU:B042", module_px=8)))
    assert has_finder_patterns(gray)
    assert not has_finder_patterns(np.full((720, 1280), 200, dtype=np.uint8))


def test_points_are_in_frame_coordinates() -> None:
    code = imaging.qr_image("A042", module_px=6)
    found = PipelineDecoder().decode(in_frame(code, at=(600, 300)))
    xs = [p[0] for p in found[0].points]
    ys = [p[1] for p in found[0].points]
    assert 590 <= min(xs) and max(xs) <= 600 + code.shape[1]
    assert 290 <= min(ys) and max(ys) <= 300 + code.shape[0]


def test_bytes_to_text_prefers_utf8_then_shift_jis() -> None:
    assert bytes_to_text("Nguyễn".encode()) == "Nguyễn"
    assert bytes_to_text("モバイル".encode("shift_jis")) == "モバイル"
    assert bytes_to_text(b"caf\xe9") == "café"  # neither UTF-8 nor Shift_JIS: ISO-8859-1


def _small_soft(text: str, rng: np.random.Generator, scale: float, sigma: float) -> imaging.Image:
    """A code as a poor camera sees it from afar: about 2 px per module, out of focus, noisy."""
    code = imaging.to_bgr(imaging.qr_image(text, module_px=4))
    framed = np.full((code.shape[0] + 48, code.shape[1] + 48, 3), (200, 190, 180), dtype=np.uint8)
    framed[24:-24, 24:-24] = code
    small = imaging.resize(framed, scale * float(rng.uniform(0.9, 1.1)))
    return imaging.add_noise(imaging.gaussian_blur(small, sigma), rng, 4.0)


def test_pipeline_reads_small_soft_codes_raw_zxing_misses() -> None:
    payloads = ["WKT1:0f3c2a9e-ticket-A012", "HS-2026-000123 Phường Tân Định", "000.00.19.H56-241205-0001"]
    zxing, pipeline = ZxingDecoder(), PipelineDecoder()
    read = {"zxing": 0, "pipeline": 0}
    cases = [(scale, sigma, seed) for scale, sigma in ((0.45, 0.9), (0.55, 1.2)) for seed in range(6)]
    for scale, sigma, seed in cases:
        text = payloads[seed % 3]
        image = _small_soft(text, np.random.default_rng(seed), scale, sigma)
        for name, decoder in (("zxing", zxing), ("pipeline", pipeline)):
            texts = [d.text for d in decoder.decode(image)]
            assert texts in ([], [text]), f"{name} read something else"  # never a wrong read
            read[name] += texts == [text]
    assert read["zxing"] <= len(cases) // 4  # hard for the first pass…
    assert read["pipeline"] >= len(cases) - 1  # …read by the enlarged, sharpened fall-back


@pytest.mark.parametrize("kind", imaging.DEGRADATIONS)
def test_degraded_frames_without_a_code_read_nothing_and_skip_fallbacks(kind: str) -> None:
    rng = np.random.default_rng(7)
    scene = imaging.add_noise(imaging.vertical_gradient(480, 360, (90, 120, 150), (200, 210, 190)), rng, 12.0)
    for i in range(6):  # a few squares and text: shapes a finder check could mistake for eyes
        imaging.fill_rect(scene, (30 + 70 * i, 40), (80 + 70 * i, 90), (20, 20, 20))
    imaging.draw_text(scene, "Phường Tân Định 2026", (20, 300), 1.0, (30, 30, 30), 2)
    for small in (scene, imaging.resize(scene, 0.5)):
        image = imaging.degrade(small, kind, np.random.default_rng(len(kind)))
        pipeline = PipelineDecoder()
        assert pipeline.decode(image) == []
        assert pipeline.stats.fallback_frames == 0


def test_degradations_are_deterministic_and_named() -> None:
    photo = imaging.to_bgr(imaging.qr_image("x", module_px=6))
    for kind in imaging.DEGRADATIONS:
        a = imaging.degrade(photo, kind, np.random.default_rng(1))
        b = imaging.degrade(photo, kind, np.random.default_rng(1))
        assert a.dtype == np.uint8 and np.array_equal(a, b)
    with pytest.raises(ValueError, match="unknown degradation"):
        imaging.degrade(photo, "fog", np.random.default_rng(1))


def test_pipeline_reads_codes_whose_modules_are_textured() -> None:
    # A photo or halftone inside the modules (artistic codes, cheap print): every pixel strays far from its
    # module's tone. The smaller, softened pass averages it back to one tone per module.
    text = "HS-2026-000123 Phường Tân Định"
    zxing, pipeline = ZxingDecoder(), PipelineDecoder()
    read = {"zxing": 0, "pipeline": 0}
    cases = [(spread, seed) for spread in (90.0, 120.0) for seed in range(4)]
    for spread, seed in cases:
        code = imaging.qr_image(text, module_px=6)
        texture = np.random.default_rng(seed).uniform(-spread, spread, size=code.shape)
        image = np.clip(np.where(code > 127, 200.0, 55.0) + texture, 0, 255).astype(np.uint8)
        for name, decoder in (("zxing", zxing), ("pipeline", pipeline)):
            texts = [d.text for d in decoder.decode(image)]
            assert texts in ([], [text]), f"{name} read something else"
            read[name] += texts == [text]
    assert read["zxing"] <= len(cases) // 4 and read["pipeline"] == len(cases)
