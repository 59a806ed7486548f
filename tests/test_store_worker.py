"""The database worker: SQLite writes off the event loop, against a real second process holding the lock."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.clock import FakeClock
from agent.core import Core
from agent.errors import NotFound, StorageError
from agent.queue.service import Issued
from agent.settings import load_settings
from agent.store import events
from agent.store.db import Database
from agent.store.feed import EventFeed
from agent.store.worker import DbWorker
from tests.conftest import CATALOGUE

SERVICE = "chung-thuc-ban-sao"

# A second process that takes the write lock and keeps it until told to let go on stdin.
HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO meta(key, value) VALUES('holder', 'uncommitted')")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
print("released", flush=True)
"""


class LockHolder:
    def __init__(self, db_path: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(db_path)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "locked"

    def release(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "released"
        assert self.proc.wait(timeout=30) == 0

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    Database(data / "kiosk.db").open().close()  # migrated before any lock is taken
    return data


def opener(data: Path, clock: FakeClock, busy_timeout_ms: int = 30_000) -> Callable[[], Core]:
    settings = load_settings(storage={"data_dir": data, "busy_timeout_ms": busy_timeout_ms},
                             queue={"enforce_hours": False, "catalogue": CATALOGUE})
    return lambda: Core.open(settings, clock)


@pytest.fixture
def holder(data_dir: Path) -> Iterator[Callable[[], LockHolder]]:
    made: list[LockHolder] = []

    def make() -> LockHolder:
        made.append(LockHolder(data_dir / "kiosk.db"))
        return made[-1]

    yield make
    for h in made:
        h.kill()


class Ticker:
    """A coroutine that counts loop turns; `reach(n)` is an event awaited after n more ticks."""

    def __init__(self) -> None:
        self.ticks = 0
        self._goals: list[tuple[int, asyncio.Event]] = []

    async def run(self) -> None:
        while True:
            await asyncio.sleep(0.001)
            self.ticks += 1
            for goal, event in self._goals:
                if self.ticks >= goal:
                    event.set()

    async def reach(self, more: int) -> None:
        event = asyncio.Event()
        self._goals.append((self.ticks + more, event))
        await event.wait()


def take_signalled(started: Callable[[], None]) -> Callable[[Core], Issued]:
    def unit(core: Core) -> Issued:
        started()
        return core.queue.take(SERVICE, source="kiosk")
    return unit


async def test_take_waits_for_other_process_lock_without_stalling_loop(
        data_dir: Path, clock: FakeClock, holder: Callable[[], LockHolder], caplog: pytest.LogCaptureFixture) -> None:
    lock = holder()
    ticker = Ticker()
    tick_task = asyncio.create_task(ticker.run())
    try:
        # 50 loop ticks of >= 1 ms each pass while the unit waits: it is longer than slow_s.
        async with DbWorker(opener(data_dir, clock), slow_s=0.02) as worker:
            loop = asyncio.get_running_loop()
            started = asyncio.Event()
            take = asyncio.create_task(worker.run(take_signalled(lambda: loop.call_soon_threadsafe(started.set))))
            await started.wait()  # the unit is in the thread, blocked on BEGIN IMMEDIATE
            before = ticker.ticks
            await asyncio.wait_for(ticker.reach(50), 20)
            # The loop turned 50 times while the take waited for the other process's lock.
            assert ticker.ticks - before >= 50
            assert not take.done()
            await asyncio.to_thread(lock.release)
            issued = await asyncio.wait_for(take, 30)
            assert issued.ticket.number == "B001"
        # The long wait is reported once, naming the unit, after it ended.
        assert worker.slow == 1
        slow = [r for r in caplog.records if "took" in r.getMessage()]
        assert len(slow) == 1 and slow[0].levelname == "WARNING" and "take_signalled" in slow[0].getMessage()
    finally:
        tick_task.cancel()
    with Database(data_dir / "kiosk.db") as db:
        assert [r[0] for r in db.conn.execute("SELECT number FROM tickets")] == ["B001"]


async def test_lock_held_past_busy_timeout_is_db_locked_and_loses_nothing(
        data_dir: Path, clock: FakeClock, holder: Callable[[], LockHolder]) -> None:
    lock = holder()
    ticker = Ticker()
    tick_task = asyncio.create_task(ticker.run())
    try:
        async with DbWorker(opener(data_dir, clock, busy_timeout_ms=300)) as worker:
            before = ticker.ticks
            with pytest.raises(StorageError) as caught:
                await worker.run(lambda core: core.queue.take(SERVICE))
            assert caught.value.code == "db_locked"
            assert ticker.ticks > before  # the loop went on while the unit waited
            await asyncio.to_thread(lock.release)
            # Nothing half-written: the retry is the first ticket of the day.
            issued = await worker.run(lambda core: core.queue.take(SERVICE))
            assert issued.ticket.number == "B001"
    finally:
        tick_task.cancel()


async def test_exceptions_propagate_and_worker_goes_on(data_dir: Path, clock: FakeClock) -> None:
    async with DbWorker(opener(data_dir, clock)) as worker:
        with pytest.raises(NotFound):
            await worker.run(lambda core: core.queue.take("khong-co-dich-vu"))

        def boom(core: Core, text: str) -> None:
            raise ValueError(text)

        with pytest.raises(ValueError, match="from the thread"):
            await worker.run(boom, "from the thread")
        ran_in: list[str] = []

        def where(core: Core) -> str:
            ran_in.append(threading.current_thread().name)
            return core.queue.take(SERVICE).ticket.number

        assert await worker.run(where) == "B001"
        assert ran_in == ["db-worker"]


async def test_worker_commits_wake_event_feed_follower(data_dir: Path, clock: FakeClock) -> None:
    with Database(data_dir / "kiosk.db") as reader:
        # A poll interval of an hour: only the in-process wake-up can end the wait.
        feed = EventFeed(reader, poll_interval=3600)
        try:
            async with DbWorker(opener(data_dir, clock)) as worker:
                worker.on_commit(feed.notify)
                changed = asyncio.create_task(feed.changed(timeout=None))
                await asyncio.sleep(0)  # let the follower register its waiter
                issued = await worker.run(lambda core: core.queue.take(SERVICE))
                await asyncio.wait_for(changed, 10)
                # The loop's own read connection sees the worker's commit at once.
                seen = events.since(reader.conn, 0, 10)
                assert [(e.type, e.data["number"]) for e in seen] == [("ticket.issued", issued.ticket.number)]
        finally:
            feed.close()


async def test_shutdown_finishes_queued_work_then_refuses(data_dir: Path, clock: FakeClock) -> None:
    worker = DbWorker(opener(data_dir, clock))
    async with worker:
        futures = [worker.submit(lambda core: core.queue.take(SERVICE)) for _ in range(20)]
        assert worker.pending == 20
    # Leaving the block waited for all 20, in submission order, and closed the thread.
    assert [f.result().ticket.number for f in futures] == [f"B{i:03d}" for i in range(1, 21)]
    assert worker.pending == 0
    assert not any(t.name == "db-worker" for t in threading.enumerate())
    with pytest.raises(StorageError) as caught:
        await worker.run(lambda core: core.queue.take(SERVICE))
    assert caught.value.code == "db_closed"


async def test_full_queue_refuses_at_once_with_busy(
        data_dir: Path, clock: FakeClock, holder: Callable[[], LockHolder]) -> None:
    lock = holder()
    async with DbWorker(opener(data_dir, clock), max_pending=3) as worker:
        loop = asyncio.get_running_loop()
        started = asyncio.Event()
        first = worker.submit(take_signalled(lambda: loop.call_soon_threadsafe(started.set)))
        await started.wait()  # running, blocked on the lock
        queued = [worker.submit(lambda core: core.queue.take(SERVICE)) for _ in range(2)]
        with pytest.raises(StorageError) as caught:
            worker.submit(lambda core: core.queue.take(SERVICE))
        assert caught.value.code == "busy"
        await asyncio.to_thread(lock.release)
        numbers = [(await f).ticket.number for f in [first, *queued]]
        assert numbers == ["B001", "B002", "B003"]
        # Room again once the queue drained.
        assert (await worker.run(lambda core: core.queue.take(SERVICE))).ticket.number == "B004"


async def test_open_failure_is_raised_and_leaves_no_thread(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-db"
    bad.mkdir()
    (bad / "kiosk.db").write_bytes(b"this is not a database" * 100)
    settings = load_settings(storage={"data_dir": bad}, queue={"enforce_hours": False, "catalogue": CATALOGUE})
    with pytest.raises(StorageError):
        async with DbWorker(lambda: Core.open(settings)):
            pass
    assert not any(t.name == "db-worker" for t in threading.enumerate())


async def test_cancelled_before_start_is_skipped_started_unit_finishes(
        data_dir: Path, clock: FakeClock, holder: Callable[[], LockHolder]) -> None:
    lock = holder()
    async with DbWorker(opener(data_dir, clock)) as worker:
        loop = asyncio.get_running_loop()
        started = asyncio.Event()
        running = asyncio.create_task(
            worker.run(take_signalled(lambda: loop.call_soon_threadsafe(started.set))))
        await started.wait()
        waiting = worker.submit(lambda core: core.queue.take(SERVICE))
        waiting.cancel()  # its caller gave up before the unit started: it must not issue a ticket
        running.cancel()  # already in the thread: it finishes as one unit, nobody reads the result
        await asyncio.to_thread(lock.release)
        after = await worker.run(lambda core: core.queue.take(SERVICE))
        assert after.ticket.number == "B002"
        assert worker.pending == 0
    with Database(data_dir / "kiosk.db") as db:
        assert sorted(r[0] for r in db.conn.execute("SELECT number FROM tickets")) == ["B001", "B002"]


async def test_reads_on_the_loop_do_not_wait_for_the_lock_holder(
        data_dir: Path, clock: FakeClock, holder: Callable[[], LockHolder]) -> None:
    async with DbWorker(opener(data_dir, clock)) as worker:
        issued = await worker.run(lambda core: core.queue.take(SERVICE))
    lock = holder()
    # The loop's own connection, with a 30 s busy timeout it never needs: in WAL mode a reader is
    # never made to wait by a writer, it sees the last committed state (a wait would fail the test
    # with db_locked after 30 s).
    reader = Core.open(load_settings(storage={"data_dir": data_dir, "busy_timeout_ms": 30_000},
                                     queue={"enforce_hours": False, "catalogue": CATALOGUE}), clock)
    try:
        snap = reader.queue.snapshot()
        assert [t["number"] for t in snap["waiting"]] == [issued.ticket.number]
        assert reader.db.meta_get("holder") is None  # the other process's write is not visible yet
        assert events.last_seq(reader.db.conn) == issued.seq
    finally:
        reader.close()
    await asyncio.to_thread(lock.release)


async def test_post_runs_in_order_and_logs_failures(
        data_dir: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    def record_fault(core: Core, kind: str) -> None:
        with core.db.write() as conn:
            events.append(conn, "device.fault", {"device": "camera", "fault": kind, "detail": ""}, clock())

    def broken(core: Core) -> None:
        raise ValueError("unit failed on purpose")

    async with DbWorker(opener(data_dir, clock)) as worker:
        worker.post(record_fault, "disconnected", what="camera fault event")
        worker.post(broken, what="broken unit")
        # Units run in submission order: this read in the thread sees the posted fault committed.
        types = await worker.run(lambda core: [e.type for e in events.since(core.db.conn, 0, 10)])
    assert types == ["device.fault"]
    failures = [r for r in caplog.records if r.getMessage() == "broken unit failed"]
    assert len(failures) == 1 and failures[0].exc_info is not None
    assert "unit failed on purpose" in str(failures[0].exc_info[1])
