"""Vietnamese number reading: explicit examples, rule checks over 0..9999 and a strict parse-back.

The parser below is written from the reading rules, independently of agent.voice.numbers: it accepts
only well-formed readings (it rejects "mười mốt", "hai mươi một", "linh" without "trăm", a leading
"không trăm"…), so a round trip over every number proves each reading follows the rules and that
no two numbers read the same.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.voice.numbers import MAX_NUMBER, NORTHERN, SOUTHERN, number_words, read_digits, read_number

DIGIT = {"không": 0, "một": 1, "hai": 2, "ba": 3, "bốn": 4, "năm": 5, "sáu": 6, "bảy": 7, "tám": 8, "chín": 9}
AFTER_MUOI = {"mốt": 1, "tư": 4, "lăm": 5, "hai": 2, "ba": 3, "sáu": 6, "bảy": 7, "tám": 8, "chín": 9}
AFTER_MUOI_10 = {"lăm": 5, "một": 1, "hai": 2, "ba": 3, "bốn": 4, "sáu": 6, "bảy": 7, "tám": 8, "chín": 9}
SCALE = {"nghìn": 1000, "ngàn": 1000, "triệu": 10**6, "tỷ": 10**9}


class ParseError(ValueError):
    pass


def _group(words: list[str], pos: int, must_say_hundreds: bool) -> tuple[int, int]:
    """Parse one three-digit group starting at ``pos``; returns (value, next position)."""

    def at(i: int) -> str | None:
        return words[i] if i < len(words) else None

    value = 0
    has_hundreds = at(pos) in DIGIT and at(pos + 1) == "trăm"
    if has_hundreds:
        hundreds = DIGIT[words[pos]]
        if hundreds == 0 and not must_say_hundreds:
            raise ParseError("leading 'không trăm'")
        value, pos = hundreds * 100, pos + 2
    elif must_say_hundreds:
        raise ParseError("inner group without its hundreds")
    word = at(pos)
    if word in ("linh", "lẻ"):
        if not has_hundreds:
            raise ParseError("'linh' without 'trăm'")
        unit = at(pos + 1)
        if unit not in DIGIT or DIGIT[unit] == 0:
            raise ParseError(f"bad unit after linh: {unit}")
        return value + DIGIT[unit], pos + 2
    if word == "mười":
        unit = at(pos + 1)
        if unit in AFTER_MUOI_10:
            return value + 10 + AFTER_MUOI_10[unit], pos + 2
        return value + 10, pos + 1
    if word in DIGIT and DIGIT[word] >= 2 and at(pos + 1) == "mươi":
        tens = DIGIT[word] * 10
        unit = at(pos + 2)
        if unit in AFTER_MUOI:
            return value + tens + AFTER_MUOI[unit], pos + 3
        return value + tens, pos + 2
    if not has_hundreds and word in DIGIT and DIGIT[word] >= 1:
        return DIGIT[word], pos + 1
    if has_hundreds:
        return value, pos
    raise ParseError(f"unexpected {word!r} at {pos}")


def parse_reading(text: str) -> int:
    words = text.split()
    if words == ["không"]:
        return 0
    total, pos, last_scale = 0, 0, None
    while pos < len(words):
        group, pos = _group(words, pos, must_say_hundreds=last_scale is not None)
        if group == 0:
            raise ParseError("a spoken group must not be zero")
        scale = SCALE[words[pos]] if pos < len(words) and words[pos] in SCALE else 1
        if scale > 1:
            pos += 1
        if last_scale is not None and scale >= last_scale:
            raise ParseError("scales must decrease")
        total += group * scale
        last_scale = scale
    if not words:
        raise ParseError("empty")
    return total


EXAMPLES = {
    0: "không",
    5: "năm",
    10: "mười",
    11: "mười một",
    14: "mười bốn",
    15: "mười lăm",
    21: "hai mươi mốt",
    24: "hai mươi tư",
    25: "hai mươi lăm",
    100: "một trăm",
    101: "một trăm linh một",
    104: "một trăm linh bốn",
    105: "một trăm linh năm",
    110: "một trăm mười",
    115: "một trăm mười lăm",
    1000: "một nghìn",
    1005: "một nghìn không trăm linh năm",
    1015: "một nghìn không trăm mười lăm",
    1100: "một nghìn một trăm",
    2024: "hai nghìn không trăm hai mươi tư",
    10_000: "mười nghìn",
    15_000: "mười lăm nghìn",
    21_001: "hai mươi mốt nghìn không trăm linh một",
    105_000: "một trăm linh năm nghìn",
    999_999: "chín trăm chín mươi chín nghìn chín trăm chín mươi chín",
    1_000_005: "một triệu không trăm linh năm",
}


@pytest.mark.parametrize(("number", "reading"), sorted(EXAMPLES.items()))
def test_explicit_examples(number: int, reading: str) -> None:
    assert read_number(number) == reading


def test_southern_style() -> None:
    assert read_number(1005, SOUTHERN) == "một ngàn không trăm lẻ năm"
    assert read_number(2024, SOUTHERN) == "hai ngàn không trăm hai mươi tư"
    assert read_number(1005, NORTHERN) == "một nghìn không trăm linh năm"


def test_parser_rejects_malformed_readings() -> None:
    # The parser is the oracle for the sweep below, so it must itself be strict.
    for bad in ("mười mốt", "hai mươi một", "mười tư", "hai mươi năm", "linh năm", "không trăm năm",
                "một nghìn năm", "mười năm", "một trăm linh mốt", "một nghìn một triệu", ""):
        with pytest.raises(ParseError):
            parse_reading(bad)
    assert parse_reading("một nghìn không trăm linh năm") == 1005


def test_round_trip_every_number_up_to_9999() -> None:
    readings = {}
    for n in range(10_000):
        text = read_number(n)
        assert parse_reading(text) == n, (n, text)
        readings[text] = n
    assert len(readings) == 10_000  # injective: no two numbers sound alike


def test_word_rules_hold_for_every_number_up_to_9999() -> None:
    for n in range(10_000):
        words = number_words(n)
        for i, word in enumerate(words):
            before = words[i - 1] if i else None
            if word in ("mốt", "tư"):
                assert before == "mươi", (n, words)
            if word == "lăm":
                assert before in ("mười", "mươi"), (n, words)
            if word == "năm" and before is not None:
                assert before not in ("mười", "mươi"), (n, words)  # 5 after mười/mươi is "lăm"
            if word == "một" and before == "mươi":
                raise AssertionError((n, words))  # 1 after mươi is "mốt"
            if word == "bốn" and before == "mươi":
                raise AssertionError((n, words))  # 4 after mươi is "tư"
            if word == "linh":
                assert before == "trăm" and words[i + 1] in DIGIT and words[i + 1] != "không", (n, words)
        assert words.count("nghìn") == (1 if n >= 1000 else 0)
        if n >= 1000:
            # the group after nghìn says its hundreds, or is skipped when it is zero
            assert ("trăm" in words) == (n % 1000 != 0), (n, words)
        assert ("linh" in words) == (n >= 100 and n % 100 in range(1, 10)), (n, words)
        assert ("không" in words) == (n == 0 or (n >= 1000 and (n // 100) % 10 == 0 and n % 1000 != 0))


@given(st.integers(min_value=0, max_value=MAX_NUMBER))
def test_round_trip_large_numbers(n: int) -> None:
    assert parse_reading(read_number(n)) == n
    assert parse_reading(read_number(n, SOUTHERN)) == n


def test_out_of_range_and_wrong_types() -> None:
    for bad in (-1, MAX_NUMBER + 1):
        with pytest.raises(ValueError):
            read_number(bad)
    with pytest.raises(TypeError):
        read_number(True)
    with pytest.raises(TypeError):
        read_number(1.0)  # type: ignore[arg-type]


def test_read_digits() -> None:
    assert read_digits("012") == "không một hai"
    with pytest.raises(ValueError):
        read_digits("1a")
