"""Vietnamese reading of whole numbers, as a caller says them over a loudspeaker.

Rules (standard reading, taught in primary school and used on radio):

* digits: không một hai ba bốn năm sáu bảy tám chín;
* tens: 10 is "mười", 20..90 are "<digit> mươi";
* units after "mươi" (20..99): 1 → "mốt", 4 → "tư", 5 → "lăm" ("hai mươi mốt", "hai mươi tư",
  "hai mươi lăm"); after "mười" only 5 changes ("mười lăm", but "mười một", "mười bốn");
* inside a hundred group a zero tens digit followed by a non-zero unit is read "linh"
  ("một trăm linh một", "một trăm linh năm" — "linh" is followed by the plain digit);
* a group of three digits after a higher group is read in full, so its zero hundreds are spoken
  ("một nghìn không trăm linh năm", "hai nghìn không trăm hai mươi tư"); an all-zero group is
  skipped ("một triệu không trăm linh năm");
* groups: nghìn (southern "ngàn"), triệu, tỷ.

The southern style (:data:`SOUTHERN`) says "ngàn" and "lẻ"; everything else is shared.
"""

from __future__ import annotations

from dataclasses import dataclass

DIGITS: tuple[str, ...] = ("không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín")
MAX_NUMBER = 999_999_999_999


@dataclass(frozen=True)
class NumberStyle:
    """Regional word choices. Only these two words differ between north and south for our purpose."""

    thousand: str = "nghìn"
    zero_tens: str = "linh"


NORTHERN = NumberStyle()
SOUTHERN = NumberStyle(thousand="ngàn", zero_tens="lẻ")


def _tens_and_units(tens: int, units: int, style: NumberStyle, after_hundreds: bool) -> list[str]:
    """Words for the last two digits of a group; ``after_hundreds`` says a "trăm" was spoken before."""
    if tens == 0:
        if units == 0:
            return []
        # "linh" only bridges a spoken hundreds and a unit: 105 "một trăm linh năm", but 5 "năm".
        return [style.zero_tens, DIGITS[units]] if after_hundreds else [DIGITS[units]]
    if tens == 1:
        words = ["mười"]
        if units == 5:
            words.append("lăm")
        elif units != 0:
            words.append(DIGITS[units])
        return words
    words = [DIGITS[tens], "mươi"]
    if units == 1:
        words.append("mốt")
    elif units == 4:
        words.append("tư")
    elif units == 5:
        words.append("lăm")
    elif units != 0:
        words.append(DIGITS[units])
    return words


def _group(value: int, style: NumberStyle, leading: bool) -> list[str]:
    """Words for one group of three digits (0..999); a non-leading group always says its hundreds."""
    hundreds, rest = divmod(value, 100)
    tens, units = divmod(rest, 10)
    words: list[str] = []
    spoke_hundreds = hundreds != 0 or not leading
    if spoke_hundreds:
        words += [DIGITS[hundreds], "trăm"]
    return words + _tens_and_units(tens, units, style, spoke_hundreds)


def number_words(n: int, style: NumberStyle = NORTHERN) -> list[str]:
    """The syllables of ``n`` in order, e.g. 2024 → ["hai", "nghìn", "không", "trăm", "hai", "mươi", "tư"]."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"expected an int, got {type(n).__name__}")
    if n < 0 or n > MAX_NUMBER:
        raise ValueError(f"number out of range 0..{MAX_NUMBER}: {n}")
    if n == 0:
        return [DIGITS[0]]
    scales = ("", style.thousand, "triệu", "tỷ")
    groups: list[int] = []
    while n:
        n, group = divmod(n, 1000)
        groups.append(group)
    words: list[str] = []
    top = len(groups) - 1
    for index in range(top, -1, -1):
        group = groups[index]
        if group == 0:
            continue
        words += _group(group, style, leading=index == top)
        if scales[index]:
            words.append(scales[index])
    return words


def read_number(n: int, style: NumberStyle = NORTHERN) -> str:
    """``n`` read in Vietnamese words: 15 → "mười lăm", 1005 → "một nghìn không trăm linh năm"."""
    return " ".join(number_words(n, style))


def read_digits(digits: str) -> str:
    """A digit string read digit by digit: "012" → "không một hai" (for readers who prefer that)."""
    if not digits.isascii() or not digits.isdigit():
        raise ValueError(f"expected ASCII digits, got {digits!r}")
    return " ".join(DIGITS[int(d)] for d in digits)
