"""Shared fixtures: real SQLite files in tmp dirs, an injected clock, the real catalogue."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.clock import FakeClock
from agent.queue.catalogue import Catalogue, load_catalogue
from agent.queue.service import QueueService
from agent.settings import QueueSettings
from agent.store.db import Database

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "config" / "services.toml"
KIOSK = [sys.executable, "-m", "agent.cli.main"]

# Monday 30 Nov 2026, 09:00 in Ho Chi Minh City (02:00 UTC): the office is open.
MONDAY_9AM = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(MONDAY_9AM)


@pytest.fixture
def catalogue() -> Catalogue:
    return load_catalogue(CATALOGUE)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "kiosk.db").open()
    yield database
    database.close()


def make_queue(db: Database, catalogue: Catalogue, clock: FakeClock, **settings: object) -> QueueService:
    return QueueService(db, catalogue, QueueSettings(**settings), clock)  # type: ignore[arg-type]


@pytest.fixture
def queue(db: Database, catalogue: Catalogue, clock: FakeClock) -> QueueService:
    return make_queue(db, catalogue, clock)


@pytest.fixture
def kiosk_env(tmp_path: Path) -> dict[str, str]:
    """Environment for running the real `kiosk` CLI against a tmp data dir, hours not enforced."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK_")}
    env.update({"KIOSK_STORAGE__DATA_DIR": str(tmp_path / "data"), "KIOSK_QUEUE__ENFORCE_HOURS": "false",
                "KIOSK_QUEUE__CATALOGUE": str(CATALOGUE), "PYTHONPATH": str(ROOT)})
    return env


def run_kiosk(env: dict[str, str], *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*KIOSK, *args], env=env, capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"kiosk {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """A test must not leave threads running behind it (capture, audio, MQTT loops)."""
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon]
    assert not leaked, f"threads leaked: {leaked}"


# Fixtures shared by several test files: a real mosquitto on a free port, and headless Chromium.
pytest_plugins = ["tests.brokers", "tests.browsers", "tests.disks"]
