"""A corrupt database: kept aside with its -wal/-shm, a fresh one in its place, the day's numbering
carried over when it can be read, an event and a telemetry field saying so."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.clock import FakeClock
from agent.core import Core
from agent.errors import Refused, StorageError
from agent.queue.catalogue import Catalogue
from agent.settings import Settings
from agent.store import events
from agent.store.db import Database
from agent.store.diskguard import DiskGuard
from agent.store.recovery import RECOVERY_JUMP
from agent.voice.wiring import rotate_wavs
from tests.conftest import CATALOGUE, make_queue, run_kiosk
from tests.test_daemon import quiet_env, start_line_and_stop


def settings(tmp_path: Path) -> Settings:
    return Settings.model_validate({"storage": {"data_dir": str(tmp_path / "data")},
                                    "queue": {"enforce_hours": False, "catalogue": str(CATALOGUE)}})


def test_garbage_file_is_kept_aside_and_a_fresh_database_started(tmp_path: Path, clock: FakeClock) -> None:
    s = settings(tmp_path)
    s.db_path().parent.mkdir(parents=True)
    garbage = os.urandom(64 * 1024)
    s.db_path().write_bytes(garbage)
    Path(f"{s.db_path()}-wal").write_bytes(b"stale wal")
    with pytest.raises(StorageError):  # a CLI call does not touch it: it reports the error
        Core.open(s, clock).close()
    assert s.db_path().read_bytes() == garbage
    core = Core.open(s, clock, recover=True)
    try:
        assert core.recovery is not None and not core.recovery.salvaged
        aside = s.db_path().parent / core.recovery.moved_to
        assert aside.name.startswith("kiosk.db.corrupt-20261130T020000Z")
        assert aside.read_bytes() == garbage and Path(f"{aside}-wal").read_bytes() == b"stale wal"
        assert core.db.integrity_check() == "ok"
        log = events.since(core.db.conn, 0)
        assert [e.type for e in log] == ["storage.recovered"]
        assert log[0].data["moved_to"] == aside.name and log[0].data["carried"]["numbering"]["A"] == RECOVERY_JUMP
        # Nothing readable: the day's numbering jumps so no resident's number is given again.
        assert core.queue.take("khai-sinh").ticket.number == f"A{RECOVERY_JUMP + 1}"
    finally:
        core.close()
    # The next start finds a healthy database: no second recovery.
    again = Core.open(s, clock, recover=True)
    assert again.recovery is None
    again.close()


def test_partly_readable_database_carries_the_days_numbering_in_a_new_log(tmp_path: Path, clock: FakeClock) -> None:
    s = settings(tmp_path)
    core = Core.open(s, clock)
    for _ in range(3):
        core.queue.take("khai-sinh")
    for _ in range(200):  # enough events that the log spans many pages after the counters' pages
        core.queue.take("chung-thuc-ban-sao")
    old_log = events.log_id(core.db.conn)
    core.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    core.close()
    path = s.db_path()
    size = path.stat().st_size
    with path.open("r+b") as f:  # smash the last pages (the tail of the log and its indexes)
        f.seek(size - 8 * 4096)
        f.write(b"\xde\xad" * 4 * 4096)
    core = Core.open(s, clock, recover=True)
    try:
        assert core.recovery is not None and core.recovery.salvaged
        assert core.queue.take("khai-sinh").ticket.number == "A004"
        assert core.queue.take("chung-thuc-ban-sao").ticket.number == "B201"
        # A new event log: central stores its seq 1, 2, … beside the broken database's, never over them.
        assert events.log_id(core.db.conn) not in ("", old_log)
        assert [e.seq for e in events.since(core.db.conn, 0, 10)][:1] == [1]
    finally:
        core.close()


def test_daemon_starts_on_a_garbage_database(kiosk_env: dict[str, str], tmp_path: Path) -> None:
    data = Path(kiosk_env["KIOSK_STORAGE__DATA_DIR"])
    data.mkdir(parents=True)
    (data / "kiosk.db").write_bytes(b"this is not a database" * 1000)
    _start, err = start_line_and_stop(quiet_env(kiosk_env))
    assert "is corrupt" in err and "starting a fresh one" in err
    assert len(list(data.glob("kiosk.db.corrupt-*"))) == 1
    types = run_kiosk(kiosk_env, "events", "--json", check=True).stdout.splitlines()
    assert '"storage.recovered"' in types[0] and '"agent.started"' in types[1]


def test_disk_guard_alerts_before_full_and_once(tiny_disk: Path, clock: FakeClock) -> None:
    db = Database(tiny_disk / "kiosk.db").open()
    try:
        guard = DiskGuard(db, clock, low_mb=1.0)  # the tmpfs is 2 MiB: fine while empty
        assert guard.check() is False
        with (tiny_disk / "ballast").open("wb") as fh:
            fh.write(b"\0" * 1_200_000)
        assert guard.check() is True and guard.check() is True  # low: one event, not one per check
        (tiny_disk / "ballast").unlink()
        assert guard.check() is False
        log = events.since(db.conn, 0)
        assert [(e.type, e.data["device"]) for e in log] == [("device.fault", "disk"), ("device.recovered", "disk")]
        assert log[0].data["fault"] == "low_space"
        assert guard.public()["low"] is False and guard.public()["threshold_mb"] == 1.0
    finally:
        db.close()


async def test_wav_callouts_rotate_by_count_and_bytes(tmp_path: Path) -> None:
    import numpy as np

    from devices.audio import WavFileSink

    sink = WavFileSink(tmp_path / "wav")
    for _ in range(12):
        await sink.play(np.zeros(16000, np.int16), 16000)  # 1 s clips of 32 kB each
    folder = tmp_path / "wav"
    assert rotate_wavs(folder, keep_files=5, keep_bytes=10**9) == 7
    assert sorted(p.name for p in folder.glob("*.wav")) == [f"{i:04d}.wav" for i in range(8, 13)]
    assert rotate_wavs(folder, keep_files=100, keep_bytes=2 * 32100) == 3  # bytes bound: the 2 newest stay
    assert sorted(p.name for p in folder.glob("*.wav")) == ["0011.wav", "0012.wav"]
    await sink.play(np.zeros(16000, np.int16), 16000)  # numbering goes on, never reuses a name
    assert (folder / "0013.wav").exists()
    # A fresh sink after a restart continues after the highest left, too.
    restarted = WavFileSink(folder)
    await restarted.play(np.zeros(160, np.int16), 16000)
    assert (folder / "0014.wav").exists()


def test_under_the_reserve_low_value_writes_give_way_to_tickets(tiny_disk: Path, clock: FakeClock,
                                                                catalogue: Catalogue) -> None:
    db = Database(tiny_disk / "kiosk.db").open()
    try:
        queue = make_queue(db, catalogue, clock, enforce_hours=False)
        guard = DiskGuard(db, clock, low_mb=1.9, reserve_mb=1.0)
        with (tiny_disk / "ballast").open("wb") as fh:
            fh.write(b"\0" * 1_200_000)
        assert guard.check() is True and guard.public()["refusing_low_value"] is True
        with pytest.raises(Refused) as refused, db.write() as conn:
            events.append(conn, "rating.submitted", {"score": 5}, clock())
        assert refused.value.code == "disk_low"
        assert queue.take("khai-sinh").ticket.number == "A001"  # tickets still go through
        (tiny_disk / "ballast").unlink()
        guard.check()
        with db.write() as conn:
            events.append(conn, "rating.submitted", {"score": 5}, clock())
        assert [e.type for e in events.since(db.conn, 0)][-1] == "rating.submitted"
    finally:
        db.close()
