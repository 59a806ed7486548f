"""Check-in decisions against the real queue and SQLite file; personal data never written anywhere."""

from __future__ import annotations

import logging
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agent.checkin import codes, privacy
from agent.checkin.service import CheckinService
from agent.clock import FakeClock
from agent.core import Core
from agent.settings import CheckinSettings, load_settings
from agent.store import events
from tests import checkin_samples as S
from tests.conftest import CATALOGUE, MONDAY_9AM


@pytest.fixture
def core(tmp_path: Path, clock: FakeClock) -> Core:
    settings = load_settings(storage={"data_dir": tmp_path / "data"}, queue={"catalogue": CATALOGUE})
    c = Core.open(settings, clock)
    yield c  # type: ignore[misc]
    c.close()


@pytest.fixture
def checkin(core: Core, clock: FakeClock, tmp_path: Path) -> CheckinService:
    key = privacy.load_or_create_key(tmp_path / "data" / "privacy.key")
    return CheckinService(core, CheckinSettings(appointment_keys=S.PUBLIC), key, clock)  # type: ignore[call-arg]


def all_events(core: Core) -> list[events.Event]:
    return events.since(core.db.conn, 0)


def test_appointment_gives_priority_ticket_once(checkin: CheckinService, core: Core) -> None:
    d = checkin.handle(S.token(slot="09:00"))
    assert d.accepted and d.code == "ticket_issued" and d.ticket is not None
    assert d.ticket["priority"] == "hen-truoc" and d.ticket["source"] == "appointment"
    assert "được ưu tiên" in d.message
    again = checkin.handle(S.token(slot="09:00"))
    assert again.accepted and again.code == "already_checked_in" and again.ticket["id"] == d.ticket["id"]
    assert len(core.queue.waiting()) == 1
    kinds = [(e.type, e.data.get("code")) for e in all_events(core)]
    assert kinds == [("ticket.issued", None), ("checkin.accepted", "ticket_issued"),
                     ("checkin.accepted", "already_checked_in")]


@pytest.mark.parametrize(("tok", "code"), [
    (lambda: S.token(key=S.OTHER_KEY), "forged"),
    (lambda: S.token(ward="26743"), "wrong_ward"),
    (lambda: S.token(slot="14:00"), "not_yet_open"),
    (lambda: S.token(slot="07:00"), "expired"),
    (lambda: S.token(day=date(2026, 11, 29)), "expired"),
    (lambda: S.token(service="khong-co"), "unknown_service"),
    (lambda: S.token(key_id="old"), "unknown_key"),
    (lambda: "WKA1.garbage.x", "malformed"),
])
def test_rejected_tokens_write_a_rejection_only(checkin: CheckinService, core: Core, tok: object, code: str) -> None:
    d = checkin.handle(tok())  # type: ignore[operator]
    assert not d.accepted and d.code == code and d.message
    evs = all_events(core)
    assert [e.type for e in evs] == ["checkin.rejected"] and evs[0].data["code"] == code
    assert core.queue.waiting() == []


def test_appointment_honoured_when_walk_in_cap_reached(checkin: CheckinService, core: Core) -> None:
    for _ in range(core.catalogue.service("khai-sinh").daily_cap):
        core.queue.take("khai-sinh")
    d = checkin.handle(S.token())
    assert d.accepted and d.code == "ticket_issued"


def test_id_card_identifies_and_suggests_priority(checkin: CheckinService, core: Core, clock: FakeClock) -> None:
    d = checkin.handle(S.ELDER)
    assert d.accepted and d.code == "identified" and d.ticket is None
    assert d.display["suggested_priority"] == "cao-tuoi" and d.display["id_masked"].endswith("4321")
    assert d.display["repeat"] is False
    identity = checkin.pending_identity()
    assert identity is not None and identity.suggested_priority == "cao-tuoi"
    assert checkin.handle(S.ELDER).display["repeat"] is True  # a repeat visit is recognised by the keyed hash
    young = checkin.handle(S.CARD)
    assert young.display["suggested_priority"] is None
    clock.advance(seconds=121)
    assert checkin.pending_identity() is None


def test_invalid_card_rejected(checkin: CheckinService, core: Core) -> None:
    d = checkin.handle(S.CARD.replace("001090012345", "001091012345"))
    assert not d.accepted and d.code == "id_card_invalid"


def test_dossier_gives_result_return_ticket_once(checkin: CheckinService, core: Core) -> None:
    d = checkin.handle(S.DOSSIER)
    assert d.accepted and d.ticket is not None and d.ticket["service"] == "tra-ket-qua"
    again = checkin.handle(S.DOSSIER)
    assert again.code == "already_checked_in" and again.ticket["id"] == d.ticket["id"]
    issued = [e for e in all_events(core) if e.type == "ticket.issued"]
    assert len(issued) == 1 and issued[0].data["dossier"] == S.DOSSIER


def test_ticket_qr_shows_status(checkin: CheckinService, core: Core) -> None:
    first = core.queue.take("khai-sinh").ticket
    mine = core.queue.take("khai-sinh").ticket
    d = checkin.handle(codes.ticket_payload(mine.id))
    assert d.accepted and d.code == "ticket_status" and "còn 1 người" in d.message
    core.queue.next(1)
    core.queue.next(2)
    assert "quầy số 2" in checkin.handle(codes.ticket_payload(mine.id)).message
    assert first.number == "A001"
    unknown = checkin.handle(codes.ticket_payload("01a22a2e-3100-701b-ac25-57d9b675497e"))
    assert not unknown.accepted and unknown.code == "unknown_ticket"


@pytest.mark.parametrize("text", ["https://example.com/khuyen-mai", "", "x" * 5000, "WKT1:", "\x00\xff",
                                  "001090012345|", "000.00.19.H56"])
def test_other_payloads_rejected_cleanly(checkin: CheckinService, core: Core, text: str) -> None:
    d = checkin.handle(text)
    assert not d.accepted and d.message
    assert core.queue.waiting() == []


def test_closed_office_is_a_rejection_not_a_crash(checkin: CheckinService, clock: FakeClock) -> None:
    clock.now = datetime(2026, 11, 30, 12, 15, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))  # lunch break
    d = checkin.handle(S.DOSSIER)
    assert not d.accepted and d.code == "closed"


def test_retention_prunes_checkins(checkin: CheckinService, core: Core, clock: FakeClock) -> None:
    checkin.handle(S.CARD)
    checkin.handle("junk")
    clock.advance(days=29)
    assert checkin.prune() == 0
    clock.advance(days=2)
    assert checkin.prune() == 2
    assert core.db.conn.execute("SELECT COUNT(*) FROM checkins").fetchone()[0] == 0


def test_no_personal_data_in_db_events_or_logs(checkin: CheckinService, core: Core, tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for payload in (S.CARD, S.ELDER, S.CARD, S.CARD.replace("|Nam|", "|X|"), S.token(), S.DOSSIER):
        checkin.handle(payload)
    core.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    blobs = b"".join(p.read_bytes() for p in (tmp_path / "data").iterdir() if p.name != "privacy.key")
    text_forms = [S.CARD_ID, S.ELDER_ID, S.CARD_NAME, S.ELDER_NAME, "Lê Lợi", "Nguyễn Huệ", "01011990", "12031955"]
    for secret in text_forms:
        assert secret.encode() not in blobs, f"{secret!r} found in the data dir"
        assert secret not in caplog.text
        for e in all_events(core):
            assert secret not in str(e.envelope("26740", "demo-01"))
    assert MONDAY_9AM  # the fixture clock: these decisions happened during opening hours
