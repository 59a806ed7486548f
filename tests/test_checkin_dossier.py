"""Issue #11 item 8: dossier receipt QR codes carrying several fields, not only a bare code.

No authoritative layout of the Circular 01/2023/TT-VPCP receipt QR was found, so the common shapes
are accepted (delimited fields, key=value, JSON, a URL with the code as a query parameter), the
field position and keys are settings, and the extracted code must still match `dossier_pattern`.
"""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.checkin import codes
from agent.checkin.service import CheckinService
from agent.clock import FakeClock
from agent.core import Core
from agent.settings import CheckinSettings, load_settings
from tests import checkin_samples as S
from tests.conftest import CATALOGUE

PATTERN = re.compile(codes.DEFAULT_DOSSIER_PATTERN)
FMT = codes.DossierFormat()


def parse(text: str, fmt: codes.DossierFormat = FMT) -> str | None:
    return codes.parse_dossier(text, PATTERN, fmt)


def test_bare_code_still_accepted() -> None:
    assert parse(S.DOSSIER) == S.DOSSIER


def test_receipt_shapes_accepted() -> None:
    shapes = [
        f"{S.DOSSIER}|Đăng ký khai sinh|05/12/2024|12/12/2024",  # delimited, code first
        f"UBND phường Bến Thành|{S.DOSSIER}|Đăng ký khai sinh",  # delimited, code elsewhere
        f"maHoSo={S.DOSSIER}&ngayHenTra=12/12/2024",  # key=value
        f"MaHoSo: {S.DOSSIER}\nNgayHen: 12/12/2024",  # one key per line
        f'{{"maHoSo": "{S.DOSSIER}", "tenTTHC": "Đăng ký khai sinh"}}',  # JSON
        f"https://dichvucong.gov.vn/p/home/dvc-tra-cuu-ho-so.html?maHoSo={S.DOSSIER}&x=1",  # URL
    ]
    for text in shapes:
        assert parse(text) == S.DOSSIER, text


def test_field_position_setting() -> None:
    fmt = codes.DossierFormat(delimiter=";", field=2, keys=())
    other = "000.00.19.H56-241205-0002"
    assert parse(f"x;{other};{S.DOSSIER}", fmt) == S.DOSSIER  # only field 2 counts
    assert parse(f"x;{S.DOSSIER};y", fmt) is None


def test_settings_build_the_format() -> None:
    s = CheckinSettings(dossier_keys=["soHoSo"], dossier_field=1, dossier_delimiter="#")  # type: ignore[call-arg]
    fmt = codes.DossierFormat.from_settings(s)
    assert parse(f"soHoSo={S.DOSSIER}", fmt) == S.DOSSIER
    assert parse(f"a#{S.DOSSIER}", fmt) == S.DOSSIER
    assert parse(f"maHoSo={S.DOSSIER}", fmt) is None  # not one of the configured keys


def test_junk_rejected() -> None:
    for text in ["", "hello", "maHoSo=12345", '{"maHoSo": 5}', "[1,2]", "https://example.com/?maHoSo=abc",
                 f"{S.DOSSIER}x|y", "a|b|c", "{" * 10000, f"maHoSo={S.DOSSIER}" + "&a=b" * 5000]:
        assert parse(text) is None, text[:40]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_junk_rejected_and_nothing_raises(text: str) -> None:
    found = parse(text)
    assert found is None or PATTERN.match(found)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="|&=\n"), max_size=20), max_size=6))
def test_fuzz_delimited_junk(fields: list[str]) -> None:
    found = parse("|".join(fields))
    assert found is None or PATTERN.match(found)


def test_service_takes_a_ticket_for_a_multi_field_receipt(tmp_path: Path, clock: FakeClock) -> None:
    settings = load_settings(storage={"data_dir": tmp_path / "data"}, queue={"catalogue": CATALOGUE})
    core = Core.open(settings, clock)
    try:
        checkin = CheckinService(core, settings.checkin, b"k" * 32, clock)
        d = checkin.handle(f"maHoSo={S.DOSSIER}&ngayHenTra=12/12/2024")
        assert d.accepted and d.code == "ticket_issued"
        assert not checkin.handle("maHoSo=junk&x=1").accepted
    finally:
        core.close()
