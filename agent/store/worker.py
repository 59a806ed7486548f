"""The database's one owner off the event loop: a writer thread that runs each unit of work whole.

SQLite calls block: a commit waits for fsync (synchronous=FULL) and `BEGIN IMMEDIATE` waits up to
busy_timeout while another process (a CLI call) holds the write lock. On the event loop that wait
freezes video, SSE, MQTT and the screens. `DbWorker` gives the writing connection to one thread:

    async with DbWorker(lambda: Core.open(settings)) as worker:
        worker.on_commit(feed.notify)                  # in-process followers wake on the loop
        issued = await worker.run(lambda core: core.queue.take("chung-thuc-ban-sao"))

* The owner (a `Core`, or anything with `.db` and `.close()`) is opened, used and closed in the
  thread, so its connection never crosses threads. The constructor does no I/O.
* `run(fn, *args)` calls `fn(owner, *args)` in the thread as one unit (each domain call is already
  one `BEGIN IMMEDIATE` transaction) and returns its result or raises its exception in the caller.
  Units run one at a time, in submission order, which is also the order SQLite would serialise
  them in.
* A lock held by another process makes only the callers of `run` wait: they get their result when
  the lock frees, or the `db_locked` StorageError after busy_timeout, while the loop goes on.
* A unit slower than `slow_s` (1 s) is logged at WARNING and counted in `slow`: the loop did not
  wait, but a resident or officer did.
* At most `max_pending` units wait or run at once; one more is refused at once with the
  StorageError code "busy" (HTTP 503) instead of piling up behind a long lock.
* Leaving `async with` finishes every unit already submitted, then closes the connection in its
  own thread; `run` after that raises the StorageError code "db_closed".

Reads stay on the loop with their own connection: in WAL mode a reader never waits for a writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar, cast

from agent.errors import StorageError
from agent.store.db import Database

logger = logging.getLogger(__name__)

DEFAULT_MAX_PENDING = 64
SLOW_UNIT_S = 1.0  # a unit this long almost always waited for another process's write lock


class Owner(Protocol):
    """What the worker owns: a database connection plus whatever is built on it (e.g. `Core`)."""

    @property
    def db(self) -> Database: ...

    def close(self) -> None: ...


OwnerT = TypeVar("OwnerT", bound=Owner)
R = TypeVar("R")


class _Job:
    __slots__ = ("args", "fn", "future")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], future: asyncio.Future[Any]) -> None:
        self.fn = fn
        self.args = args
        self.future = future


_STOP = object()


class DbWorker(Generic[OwnerT]):
    def __init__(self, open_owner: Callable[[], OwnerT], *, max_pending: int = DEFAULT_MAX_PENDING,
                 name: str = "db-worker", slow_s: float = SLOW_UNIT_S) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self._open_owner = open_owner
        self.max_pending = max_pending
        self.name = name
        self.slow_s = slow_s
        self._jobs: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Future[None] | None = None
        self._accepting = False
        self._pending = 0  # submitted and not yet answered; touched on the loop only
        self._listeners: list[Callable[[], None]] = []
        self.done = 0  # units answered, for telemetry
        self.slow = 0  # units that took longer than slow_s (written by the thread, read anywhere)

    # Life cycle ---------------------------------------------------------------------------------
    async def __aenter__(self) -> DbWorker[OwnerT]:
        if self._thread is not None:
            raise RuntimeError("DbWorker is already started")
        loop = asyncio.get_running_loop()
        self._loop = loop
        ready: asyncio.Future[None] = loop.create_future()
        self._stopped = loop.create_future()
        self._thread = threading.Thread(target=self._main, args=(ready,), name=self.name)
        self._thread.start()
        try:
            await ready
        except BaseException:
            # Opening failed (the thread has ended) or we were cancelled (the thread stops once open).
            self._jobs.put(_STOP)
            await asyncio.shield(self._stopped)
            self._thread.join()
            self._thread = None
            raise
        self._accepting = True
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Finish every unit already submitted, close the owner in its thread, end the thread."""
        if self._thread is None or self._stopped is None:
            return
        self._accepting = False
        self._jobs.put(_STOP)
        # Wait for the thread's last word on the loop, never by blocking join() on the loop.
        await asyncio.shield(self._stopped)
        self._thread.join()  # it has returned already: this only reaps it
        self._thread = None

    # Work -----------------------------------------------------------------------------------------
    def submit(self, fn: Callable[..., R], *args: Any) -> asyncio.Future[R]:
        """Queue `fn(owner, *args)`; call on the loop. Refuses at once when `max_pending` are waiting."""
        if not self._accepting or self._loop is None:
            raise StorageError("the database worker is not running", code="db_closed")
        if self._pending >= self.max_pending:
            raise StorageError(f"the database is busy ({self._pending} writes waiting); try again",
                               code="busy")
        future: asyncio.Future[R] = self._loop.create_future()
        self._pending += 1
        self._jobs.put(_Job(fn, args, future))
        return future

    async def run(self, fn: Callable[..., R], *args: Any) -> R:
        """Run `fn(owner, *args)` in the worker thread as one unit; its result or its exception."""
        return await self.submit(fn, *args)

    def post(self, fn: Callable[..., object], *args: Any, what: str = "database write") -> None:
        """Fire and forget, for synchronous callbacks on the loop (device faults, call records).

        Units still run in order, so a later `run` sees this one committed. A failure is logged with
        its traceback, not raised: nobody waits for it. Refusals (`busy`, `db_closed`) are raised.
        """
        future = self.submit(fn, *args)
        future.add_done_callback(lambda f: _log_failure(f, what))

    @property
    def pending(self) -> int:
        return self._pending

    def on_commit(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` on the loop after each commit by the worker (e.g. `EventFeed.notify`)."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    # Loop side of the thread's answers --------------------------------------------------------------
    def _answer(self, future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
        self._pending -= 1
        self.done += 1
        if future.done():  # the caller gave up (cancelled); the unit ran or was skipped anyway
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def _committed(self) -> None:
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                logger.exception("commit listener failed")

    def _to_loop(self, callback: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None:
            return
        # The loop may be closed already if its owner did not wait for aclose(); nothing to tell.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(callback, *args)

    # The thread -------------------------------------------------------------------------------------
    def _main(self, ready: asyncio.Future[None]) -> None:
        owner: OwnerT | None = None
        try:
            try:
                owner = self._open_owner()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller of __aenter__
                self._to_loop(_settle, ready, None, exc)
                return
            owner.db.on_commit(lambda: self._to_loop(self._committed))
            self._to_loop(_settle, ready, None, None)
            self._serve(owner)
        finally:
            if owner is not None:
                try:
                    owner.close()
                except Exception:
                    logger.exception("closing the database worker's connection failed")
            stopped = self._stopped
            if stopped is not None:
                self._to_loop(_settle, stopped, None, None)

    def _serve(self, owner: OwnerT) -> None:
        while True:
            item = self._jobs.get()
            if item is _STOP:
                return
            job = cast(_Job, item)
            if job.future.cancelled():  # nobody waits for it and it has not started: skip it
                self._to_loop(self._answer, job.future, None, None)
                continue
            started = time.monotonic()
            try:
                result = job.fn(owner, *job.args)
            except BaseException as exc:  # noqa: BLE001 - every error belongs to the caller, who re-raises it
                self._to_loop(self._answer, job.future, None, exc)
            else:
                self._to_loop(self._answer, job.future, result, None)
            took = time.monotonic() - started
            if took > self.slow_s:
                # The loop did not wait, but its caller did: say so once per unit, without its data.
                self.slow += 1
                logger.warning("database unit %s took %.1f s (write lock held by another process?)",
                               getattr(job.fn, "__qualname__", "?"), took)


def _log_failure(future: asyncio.Future[Any], what: str) -> None:
    if future.cancelled():
        return
    error = future.exception()
    if error is not None:
        logger.error("%s failed", what, exc_info=error)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
