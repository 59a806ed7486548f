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
