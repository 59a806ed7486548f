"""A corrupt database: kept aside with its -wal/-shm, a fresh one in its place, the day's numbering
carried over when it can be read, an event and a telemetry field saying so."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.clock import FakeClock
from agent.core import Core
from agent.errors import StorageError
from agent.settings import Settings
from agent.store import events
from agent.store.recovery import RECOVERY_JUMP
from tests.conftest import CATALOGUE, run_kiosk
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


def test_partly_readable_database_carries_the_days_numbering_and_seq(tmp_path: Path, clock: FakeClock) -> None:
    s = settings(tmp_path)
    core = Core.open(s, clock)
    for _ in range(3):
        core.queue.take("khai-sinh")
    for _ in range(200):  # enough events that the log spans many pages after the counters' pages
        core.queue.take("chung-thuc-ban-sao")
    seq = events.last_seq(core.db.conn)
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
        assert events.last_seq(core.db.conn) > seq  # a seq is never reused
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
