"""The official list of wards and communes after the 2025 merger (package `vietnam-provinces`)."""

from __future__ import annotations

from dataclasses import dataclass

import vietnam_provinces as vp

from agent.errors import InvalidInput

DATA_VERSION = vp.__data_version__


@dataclass(frozen=True, slots=True)
class WardInfo:
    code: str
    name: str
    province: str

    def label(self) -> str:
        return f"{self.name}, {self.province}"


def lookup_ward(code: str) -> WardInfo:
    """The ward for a 5-digit code; raises InvalidInput with a readable sentence otherwise."""
    code = code.strip()
    if not (code.isdigit() and len(code) <= 5):
        raise InvalidInput(f"ward code {code!r} must be the 5-digit official code (e.g. 26740)", code="bad_ward")
    try:
        ward = vp.Ward.from_code(vp.WardCode(int(code)))
    except ValueError as exc:
        raise InvalidInput(f"ward code {code} is not in the official list of wards and communes "
                           f"(data of {DATA_VERSION}, after the 2025 merger)", code="unknown_ward") from exc
    province = vp.Province.from_code(ward.province_code)
    return WardInfo(code.zfill(5), ward.name, province.name)


def search_wards(text: str, limit: int = 10) -> list[WardInfo]:
    """Wards whose name contains `text` (case-insensitive), to help a technician find the code."""
    needle = text.strip().casefold()
    found = []
    for ward in vp.Ward.iter_all():
        if needle in ward.name.casefold():
            found.append(WardInfo(f"{int(ward.code):05d}", ward.name, vp.Province.from_code(ward.province_code).name))
            if len(found) >= limit:
                break
    return found
