"""Payload parsers: ID card QR, signed appointment tokens, dossier and ticket codes; fuzzed."""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.checkin import appointment, cccd, codes
from agent.errors import KioskError
from tests import checkin_samples as S

TODAY = date(2026, 11, 30)
TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def test_parse_card() -> None:
    card = cccd.parse_id_card(S.CARD, TODAY)
    assert card.id_number == S.CARD_ID and card.old_id == "123456789" and card.name == S.CARD_NAME
    assert card.birth == date(1990, 1, 1) and card.sex == "Nam" and card.issued == date(2021, 6, 15)
    assert card.age_on(TODAY) == 36
    assert S.CARD_ID not in repr(card) and S.CARD_NAME not in repr(card)


def test_2024_card_with_extra_fields_and_no_old_id() -> None:
    card = cccd.parse_id_card(S.ELDER, TODAY)
    assert card.old_id is None and card.sex == "Nữ" and card.age_on(TODAY) == 71


@pytest.mark.parametrize("mutate", [
    lambda t: t.replace("001090012345", "00109001234"),        # 11 digits
    lambda t: t.replace("001090012345", "001091012345"),       # birth year 91 ≠ 1990
    lambda t: t.replace("001090012345", "001190012345"),       # female code, card says Nam
    lambda t: t.replace("001090012345", "099090012345"),       # province 099 does not exist
    lambda t: t.replace("001090012345", "001290012345"),       # born 2090?
    lambda t: t.replace("01011990", "31021990"),               # 31 February
    lambda t: t.replace("01011990", "1990-01-01"),
    lambda t: t.replace("|Nam|", "|Male|"),
    lambda t: t.replace("15062021", "15062031"),               # issued in the future
    lambda t: t.replace("15062021", "15061980"),               # issued before birth
    lambda t: t.replace("|123456789|", "|12345|"),
    lambda t: "|".join(t.split("|")[:5]),                      # truncated
    lambda t: t.replace("Nguyễn Văn An", "Nguyen 2"),
])
def test_near_miss_cards_rejected(mutate: object) -> None:
    with pytest.raises(cccd.CardInvalid) as err:
        cccd.parse_id_card(mutate(S.CARD), TODAY)  # type: ignore[operator]
    assert S.CARD_ID not in str(err.value) and S.CARD_NAME not in str(err.value)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_card_parser_fuzz_text(text: str) -> None:
    with contextlib.suppress(cccd.CardInvalid):
        cccd.parse_id_card(text, TODAY)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["001090012345", "", "Nguyễn Văn An", "01011990", "Nam", "Nữ", "x", "31021990",
                                 "123456789", "|", "0" * 12, "99999999"]), max_size=10))
def test_card_parser_fuzz_near_miss(parts: list[str]) -> None:
    try:
        card = cccd.parse_id_card("|".join(parts), TODAY)
    except cccd.CardInvalid:
        return
    assert re.fullmatch(r"\d{12}", card.id_number)


def test_token_round_trip() -> None:
    keys = {S.KEY_ID: appointment.load_public_key(S.PUBLIC[S.KEY_ID])}
    appt = appointment.decode_token(S.token(), keys)
    assert (appt.booking, appt.ward, appt.service, appt.day, appt.slot.isoformat()) == \
        ("BK-0001", "26740", "khai-sinh", TODAY, "09:00:00")
    assert len(S.token()) < 250


def test_forged_and_tampered_tokens() -> None:
    keys = {S.KEY_ID: appointment.load_public_key(S.PUBLIC[S.KEY_ID])}
    forged = S.token(key=S.OTHER_KEY)  # same key id, wrong key
    with pytest.raises(appointment.TokenRejected) as err:
        appointment.decode_token(forged, keys)
    assert err.value.code == "forged"
    good = S.token()
    head, _payload, sig = good.split(".")
    other_payload = S.token(ward="99999").split(".")[1]
    with pytest.raises(appointment.TokenRejected) as err:
        appointment.decode_token(f"{head}.{other_payload}.{sig}", keys)  # payload swapped under a valid signature
    assert err.value.code == "forged"
    with pytest.raises(appointment.TokenRejected) as err:
        appointment.decode_token(S.token(key_id="zzz"), keys)
    assert err.value.code == "unknown_key"
    for bad in ("WKA1.", "WKA1.a.b", "WKA1.!!!.???", good + ".x", "WKA1." + "A" * 700):
        with pytest.raises(appointment.TokenRejected) as err:
            appointment.decode_token(bad, keys)
        assert err.value.code == "malformed"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_token_fuzz(text: str) -> None:
    keys = {S.KEY_ID: appointment.load_public_key(S.PUBLIC[S.KEY_ID])}
    with contextlib.suppress(appointment.TokenRejected):
        appointment.decode_token("WKA1." + text, keys)


def test_window() -> None:
    keys = {S.KEY_ID: appointment.load_public_key(S.PUBLIC[S.KEY_ID])}
    appt = appointment.decode_token(S.token(slot="09:00"), keys)

    def at(hhmm: str) -> datetime:
        return datetime.combine(TODAY, datetime.strptime(hhmm, "%H:%M").time(), TZ).astimezone(UTC)

    appointment.check_window(appt, at("08:00"), TZ, 60, 30)
    appointment.check_window(appt, at("10:00"), TZ, 60, 30)  # 30-minute slot + 30 late
    with pytest.raises(appointment.TokenRejected) as err:
        appointment.check_window(appt, at("07:59"), TZ, 60, 30)
    assert err.value.code == "not_yet_open" and "08:00" in err.value.message
    with pytest.raises(appointment.TokenRejected) as err:
        appointment.check_window(appt, at("10:01"), TZ, 60, 30)
    assert err.value.code == "expired"


def test_dossier_and_ticket_codes() -> None:
    pattern = re.compile(codes.DEFAULT_DOSSIER_PATTERN)
    assert codes.parse_dossier(S.DOSSIER, pattern) == S.DOSSIER
    for bad in ("000.00.19.H56-241205-001", "000.00.19.h56-241205-0001", S.DOSSIER + "\nx", ""):
        assert codes.parse_dossier(bad, pattern) is None
    tid = "01a22a2e-3100-701b-ac25-57d9b675497e"
    assert codes.parse_ticket(codes.ticket_payload(tid)) == tid
    assert codes.parse_ticket("WKT1:not-a-uuid") is None and codes.parse_ticket(tid) is None


def test_bad_public_key_is_a_clear_error() -> None:
    with pytest.raises(KioskError):
        appointment.load_public_key("not a key")
