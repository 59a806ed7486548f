"""Issue #10 item 11: the ID-card pseudonym cannot be reversed from what the kiosk keeps or sends.

The key is refused when weak, created 0600 and fsynced outside the data folder; the last 4 digits
are never written; the keyed hash never goes into an event (so not to central, not on the live stream).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from agent.checkin import privacy
from agent.checkin.runtime import make_checkin, privacy_key_path
from agent.checkin.service import CheckinService
from agent.clock import FakeClock
from agent.core import Core
from agent.errors import StorageError
from agent.settings import CheckinSettings, load_settings
from agent.store import events
from tests import checkin_samples as S
from tests.conftest import CATALOGUE


@pytest.fixture
def core(tmp_path: Path, clock: FakeClock) -> Core:
    settings = load_settings(storage={"data_dir": tmp_path / "data"}, queue={"catalogue": CATALOGUE})
    c = Core.open(settings, clock)
    yield c  # type: ignore[misc]
    c.close()


@pytest.mark.parametrize("content", [b"", b"short", b"x" * (privacy.KEY_BYTES - 1)])
def test_weak_key_file_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "keys" / "privacy.key"
    path.parent.mkdir()
    path.write_bytes(content)
    with pytest.raises(StorageError, match="too short"):
        privacy.load_or_create_key(path)
    assert path.read_bytes() == content  # nothing replaced behind the operator's back


def test_key_created_0600_and_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    path = tmp_path / "keys" / "privacy.key"
    key = privacy.load_or_create_key(path)
    assert len(key) == privacy.KEY_BYTES and path.read_bytes() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(synced) >= 2  # the file and its directory entry
    assert privacy.load_or_create_key(path) == key


def test_default_key_is_outside_the_data_dir(core: Core, clock: FakeClock, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    path = privacy_key_path(core.settings)
    data = core.settings.data_dir()
    assert path.is_absolute() and data not in path.parents
    creds = tmp_path / "creds"
    creds.mkdir()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert privacy_key_path(core.settings) == creds / "privacy.key"
    make_checkin(core, clock)
    assert (creds / "privacy.key").exists() and not (data / "privacy.key").exists()


def test_key_inside_data_dir_is_refused(core: Core, clock: FakeClock) -> None:
    core.settings.checkin.key_file = core.settings.data_dir() / "privacy.key"
    with pytest.raises(StorageError, match="outside the data folder"):
        make_checkin(core, clock)


def test_no_last4_and_no_hash_in_db_or_events(core: Core, clock: FakeClock, tmp_path: Path) -> None:
    key = privacy.load_or_create_key(tmp_path / "keys" / "privacy.key")
    checkin = CheckinService(core, CheckinSettings(store_masked_name=True), key, clock)  # type: ignore[call-arg]
    first = checkin.handle(S.CARD)
    assert first.accepted and first.display["id_masked"].endswith(S.CARD_ID[-4:])  # on screen, from memory
    assert checkin.handle(S.CARD).display["repeat"] is True  # repeat visits still recognised
    ref = privacy.resident_ref(key, S.CARD_ID)
    rows = core.db.conn.execute("SELECT * FROM checkins").fetchall()
    assert rows and all(S.CARD_ID[-4:] not in "|".join(map(str, r)) for r in rows)
    for e in events.since(core.db.conn, 0):
        blob = repr(e.data)
        assert ref not in blob and ref[:16] not in blob and S.CARD_ID[-4:] not in blob
        assert "resident_ref" not in e.data


def test_old_last4_are_erased_by_migration(core: Core) -> None:
    from agent.store.schema import MIGRATIONS
    with core.db.write() as conn:
        conn.execute("INSERT INTO checkins(id, at, kind, decision, code, id_last4, expires_at) "
                     "VALUES ('x', '2026-01-01T00:00:00Z', 'id_card', 'accepted', 'identified', '2345', '2027')")
    erase = [m for m in MIGRATIONS if "id_last4 = NULL" in m]
    assert len(erase) == 1
    with core.db.write() as conn:
        conn.execute(erase[0])
    assert core.db.conn.execute("SELECT id_last4 FROM checkins").fetchone()[0] is None


def test_resident_link_and_phone_expire(core: Core, clock: FakeClock, tmp_path: Path) -> None:
    """Issue #10 item 12: `tickets.resident` and `feedback.phone` are nulled after the retention."""
    from agent.web.feedback import FeedbackDesk

    key = privacy.load_or_create_key(tmp_path / "keys" / "privacy.key")
    settings = CheckinSettings(personal_retention_days=10)  # type: ignore[call-arg]
    checkin = CheckinService(core, settings, key, clock)
    ref = privacy.resident_ref(key, S.CARD_ID)
    old = core.queue.take("khai-sinh", resident=ref).ticket
    desk = FeedbackDesk(core.queue, 5, clock)
    fb_old = desk.submit("phan-anh", "Ghế chờ bị hỏng.", "0912345678", None)["id"]
    clock.advance(days=7)  # next Monday: the office is open
    new = core.queue.take("khai-sinh", resident=ref).ticket
    fb_new = desk.submit("phan-anh", "Thiếu nước uống.", "0987654321", None)["id"]
    clock.advance(days=3, seconds=1)
    checkin.prune()

    def resident(tid: str) -> object:
        return core.db.conn.execute("SELECT resident FROM tickets WHERE id=?", (tid,)).fetchone()[0]

    def phone(fid: str) -> object:
        return core.db.conn.execute("SELECT phone FROM feedback WHERE id=?", (fid,)).fetchone()[0]

    assert resident(old.id) is None and phone(fb_old) is None  # past 10 days: gone
    assert resident(new.id) == ref and phone(fb_new) is not None  # within: kept
    # The rest of the rows is kept: only the personal column is nulled.
    assert core.db.conn.execute("SELECT COUNT(*) FROM feedback").fetchone()[0] == 2


def test_live_stream_gets_only_what_screens_show(core: Core, clock: FakeClock, tmp_path: Path) -> None:
    """Issue #10 item 12: no dossier or booking code, ticket id or hash in check-in messages on the LAN."""
    from agent.store.feed import EventFeed
    from agent.web.live import LiveHub

    key = privacy.load_or_create_key(tmp_path / "keys" / "privacy.key")
    checkin = CheckinService(core, CheckinSettings(appointment_keys=S.PUBLIC), key, clock)  # type: ignore[call-arg]
    assert checkin.handle(S.DOSSIER).accepted
    assert checkin.handle(S.token(slot="09:00")).accepted
    assert not checkin.handle(S.token(ward="99999", booking="BK-OTHER")).accepted
    assert checkin.handle(S.CARD).accepted
    feed = EventFeed(core.db)
    try:
        hub = LiveHub(core, feed, 5)
        sent = [hub.envelope(e) for e in events.since(core.db.conn, 0)]
    finally:
        feed.close()
    blob = repr(sent)
    for secret in (S.DOSSIER, "BK-0001", "BK-OTHER", privacy.resident_ref(key, S.CARD_ID)):
        assert secret not in blob
    checkins = [m for m in sent if m["type"].startswith("checkin.")]
    assert len(checkins) == 4 and all(m["data"]["message"] for m in checkins)
    # The log itself (central's copy) keeps the codes for reports.
    assert S.DOSSIER in repr([e.data for e in events.since(core.db.conn, 0)])


def test_provision_creates_the_key_as_a_credential(tmp_path: Path) -> None:
    """Under systemd the credentials folder is read-only to the daemon: `kiosk provision` makes the key."""
    from tests.conftest import ROOT
    from tests.test_ops import provision

    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIOSK_", "CREDENTIALS_DIRECTORY", "STATE_DIR"))}
    env["PYTHONPATH"] = str(ROOT)
    cfg = tmp_path / "etc"
    proc = provision(env, cfg, "--ward", "26740", "--kiosk", "sg-01", "--broker", "mqtt://127.0.0.1:1883")
    assert proc.returncode == 0, proc.stderr
    key = cfg / "credentials" / "privacy.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_bytes()) == privacy.KEY_BYTES
    unit = (ROOT / "systemd" / "kiosk-agent.service.in").read_text(encoding="utf-8")
    assert "LoadCredential=privacy.key:/etc/ward-kiosk/credentials/privacy.key" in unit


def test_old_key_in_the_data_dir_is_removed(core: Core, clock: FakeClock, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A key left next to the hashes by an older version would keep them reversible: it goes."""
    creds = tmp_path / "creds"
    creds.mkdir()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    old = core.settings.data_dir() / "privacy.key"
    old.write_bytes(b"o" * privacy.KEY_BYTES)
    make_checkin(core, clock)
    assert not old.exists() and (creds / "privacy.key").read_bytes() != b"o" * privacy.KEY_BYTES
