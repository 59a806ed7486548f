"""The print service: follows the event log, prints each ticket once, watches the printer's health.

Three tasks share one printer: the reader turns log events into jobs (a bounded queue: when the
printer is stuck the reader waits, and the log itself is the durable backlog, so nothing is
dropped); the worker prints jobs in order and retries a job until it is printed or stale; the
poller asks for the real-time status (DLE EOT) and turns changes into `printer.fault` /
`printer.recovered` events. Issuing a ticket never waits for any of this. Device I/O and Pillow
run in worker threads, one at a time (`_io`).

Exactly once, as far as a printer allows: a finished job is written to `print_jobs` with the
cursor in one transaction, so a restart resumes after the last finished job. A crash after the
last byte left but before that commit prints the ticket again (a second copy beats none).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from agent.clock import Clock, rfc3339
from agent.core import Core
from agent.errors import ConfigError, KioskError
from agent.printing import layout
from agent.printing.jobs import JobRequest, job_for, ticket_view
from agent.settings import PrinterSettings
from agent.store import events
from agent.store.feed import EventFeed
from devices import escpos
from devices.printer import Printer, PrinterError, PrintJob

logger = logging.getLogger(__name__)

T = TypeVar("T")
CURSOR_KEY = "printer.cursor"
IDLE_TICK_S = 5.0  # the worker beats this often while no ticket waits
FINAL = ("printed", "skipped", "failed")
RECENT_RESULTS = 500
MESSAGES_VI = {
    "paper_end": "Máy in đã hết giấy.",
    "cover_open": "Nắp máy in đang mở.",
    "cutter_error": "Dao cắt giấy của máy in bị kẹt.",
}
DEFAULT_MESSAGE_VI = "Máy in đang không hoạt động."
STILL_ISSUED_VI = ("Số thứ tự của quý vị vẫn được cấp và giữ nguyên trong hàng chờ. Xin ghi nhớ số hoặc chụp "
                   "mã QR trên màn hình; cán bộ tại quầy sẽ in lại phiếu khi cần.")


def fault_message(reason: str) -> str:
    return MESSAGES_VI.get(reason, DEFAULT_MESSAGE_VI)


@dataclass
class PrintStats:
    printed: int = 0
    skipped: int = 0
    failed_attempts: int = 0
    bytes_sent: int = 0
    last_print_ms: float = 0.0


class PrintService:
    def __init__(self, core: Core, feed: EventFeed, printer: Printer, clock: Clock,
                 settings: PrinterSettings | None = None) -> None:
        self.core = core
        self.feed = feed
        self.printer = printer
        self.clock = clock
        self.settings = settings or core.settings.printer
        self.width = self.settings.width_dots()
        self.stats = PrintStats()
        self._beat: Callable[[], None] = lambda: None
        self._tick_s = IDLE_TICK_S
        self.fault: str | None = None
        self.fault_detail = ""
        self.paper_near_end = False
        self.status_known = False
        self.pending: dict[int, JobRequest] = {}  # by seq: a reprint may wait behind its original
        self._results: OrderedDict[str, tuple[str, str | None]] = OrderedDict()
        self._queue: asyncio.Queue[JobRequest] = asyncio.Queue(self.settings.queue_size)
        self._io = asyncio.Lock()
        self._sent_seq = 0
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self.logo = self._load_logo()

    # What the screens, telemetry and /metrics read ------------------------------------------------
    def state(self) -> dict[str, Any]:
        state = "fault" if self.fault else ("ok" if self.status_known else "unknown")
        out: dict[str, Any] = {"state": state, "fault": self.fault, "paper_near_end": self.paper_near_end,
                               "pending": len(self.pending), "printed": self.stats.printed,
                               "skipped": self.stats.skipped, "failed_attempts": self.stats.failed_attempts,
                               "device": self.printer.description}
        if self.fault:
            out["message"] = fault_message(self.fault)
        return out

    def ticket_state(self, ticket_id: str) -> dict[str, Any]:
        """The print state of one ticket: pending, printed, skipped, failed or none (never asked)."""
        if any(job.ticket == ticket_id for job in self.pending.values()):
            state, reason = "pending", self.fault
        elif ticket_id in self._results:
            state, reason = self._results[ticket_id]
        else:
            row = self.core.db.conn.execute("SELECT state, reason FROM print_jobs WHERE ticket=? ORDER BY seq DESC "
                                            "LIMIT 1", (ticket_id,)).fetchone()
            state, reason = (row[0], row[1]) if row is not None else ("none", None)
        out: dict[str, Any] = {"ticket": ticket_id, "state": state, "reason": reason}
        if state != "printed" and (self.fault or state in ("skipped", "failed")):
            out["message"] = fault_message(self.fault or reason or "") + " " + STILL_ISSUED_VI
        return out

    async def wait_ticket(self, ticket_id: str, timeout: float) -> dict[str, Any]:
        """The ticket's print state once it is final, the printer is in fault, or `timeout` passed."""
        deadline = time.monotonic() + timeout
        while True:
            current = self.ticket_state(ticket_id)
            left = deadline - time.monotonic()
            if current["state"] in FINAL or (current["state"] == "pending" and self.fault) or left <= 0:
                return current
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                # a ticket just issued may not be read from the log yet ("none"): keep waiting
                await asyncio.wait_for(changed.wait(), min(left, self.feed.poll_interval))

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # The agent part --------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event, beat: Callable[[], None] = lambda: None,
                  tick_s: float = IDLE_TICK_S) -> None:
        """Print until `stop`. The worker calls `beat` per job, per attempt and every `tick_s` while idle,
        so a print that never returns (a wedged device write, a render) is a stalled loop."""
        self._beat, self._tick_s = beat, tick_s
        cursor = self._cursor()
        self._restore_fault()
        logger.info("printing tickets on %s (%d dots per line), from event %d", self.printer.description,
                    self.width, cursor)
        tasks = [asyncio.create_task(self._read(cursor), name="printer-reader"),
                 asyncio.create_task(self._work(), name="printer-worker"),
                 asyncio.create_task(self._poll(), name="printer-status")]
        try:
            await stop.wait()
        finally:
            for task in tasks:
                # Python 3.11's wait_for can swallow a cancel that races a wake-up (the feed's
                # follow() waits that way), so cancel until the task has really ended.
                while not task.done():
                    task.cancel()
                    await asyncio.wait({task}, timeout=0.5)
            async with self._io:
                await self._device(self.printer.close)

    def _cursor(self) -> int:
        value = self.core.db.meta_get(CURSOR_KEY)
        if value is not None:
            return int(value)
        # First start: tickets issued before the printer existed are not printed now.
        with self.core.db.write() as conn:
            start = events.last_seq(conn)
            self.core.db.meta_set(conn, CURSOR_KEY, str(start))
        return start

    def _restore_fault(self) -> None:
        """A fault still open when the agent stopped stays open, so its `printer.recovered` is not lost."""
        row = self.core.db.conn.execute("SELECT type, data FROM events WHERE type IN ('printer.fault', "
                                        "'printer.recovered') ORDER BY seq DESC LIMIT 1").fetchone()
        if row is not None and row[0] == "printer.fault":
            self.fault = str(json.loads(row[1]).get("reason", "offline"))

    async def _read(self, after: int) -> None:
        stream = self.feed.follow(after)
        try:
            async for event in stream:
                try:
                    job = job_for(event)
                except (KeyError, ValueError) as exc:
                    logger.error("event %d cannot be printed: %s", event.seq, exc)
                    continue
                if job is None:
                    continue
                self.pending[job.seq] = job
                self._notify()
                await self._queue.put(job)  # full: wait; the log keeps the rest
        finally:
            aclose = getattr(stream, "aclose", None)  # follow() is a generator: close it where it waits
            if aclose is not None:
                await aclose()

    async def _work(self) -> None:
        while True:
            self._beat()
            try:
                job = await asyncio.wait_for(self._queue.get(), self._tick_s)
            except TimeoutError:
                continue
            try:
                await self._print_until_done(job)
            except Exception:  # a long-lived loop: one bad job must not stop printing
                logger.exception("printing ticket %s failed", job.number)
                self._finish(job, "failed", "internal", 0)

    async def _print_until_done(self, job: JobRequest) -> None:
        attempts = 0
        while True:
            self._beat()
            age = (self.clock() - job.at).total_seconds()
            if age > self.settings.stale_after_seconds:
                logger.warning("ticket %s not printed: issued %.0f s ago (printer.stale_after_seconds)",
                               job.number, age)
                self._finish(job, "skipped", "stale", attempts)
                return
            try:
                ticket = self.core.queue.get(job.ticket)
                view = ticket_view(self.core, ticket, job.kind, job.reprint, self.settings.footer)
            except KioskError as exc:
                logger.error("ticket %s cannot be printed: %s", job.number, exc)
                self._finish(job, "failed", exc.code, attempts)
                return
            attempts += 1
            started = time.perf_counter()
            try:
                image = await asyncio.to_thread(layout.render, view, self.width, self.logo)
                data = await asyncio.to_thread(self._encode, image)
                picture = functools.partial(layout.png, image)
                async with self._io:
                    try:
                        await self._device(self._send, job.seq, PrintJob(f"{ticket.day}-{ticket.number}-{job.seq}",
                                                                         data, picture))
                    except asyncio.CancelledError:
                        # Stopped mid-ticket: the bytes went out in full, so record it; a restart must
                        # not print it again.
                        if self._sent_seq == job.seq:
                            self._finish(job, "printed", None, attempts)
                        raise
            except PrinterError as exc:
                self.stats.failed_attempts += 1
                self._set_fault(exc.reason, exc.detail)
                delay = min(self.settings.retry_max_seconds, 0.5 * 2 ** min(attempts - 1, 10))
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                continue
            self.stats.last_print_ms = (time.perf_counter() - started) * 1000
            self.stats.bytes_sent += len(data)
            self._finish(job, "printed", None, attempts)
            self._clear_fault()
            return

    def _encode(self, image: layout.Picture) -> bytes:
        rows, width, height = layout.raster_rows(image)
        return escpos.ticket_bytes(rows, width, height, cut_paper=self.settings.cut)

    async def _device(self, fn: Callable[..., T], *args: Any) -> T:
        """Run device I/O in a thread. Cancelled, it still waits for the thread to end: a stopping agent
        never closes the printer under a write, nor returns while a ticket is still being sent."""
        future = asyncio.get_running_loop().run_in_executor(None, fn, *args)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            while not future.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait({future})
            raise

    def _send(self, seq: int, job: PrintJob) -> None:
        """In a worker thread: refuse to print into a printer that says it cannot, then send every byte."""
        status = self.printer.status()
        if status is not None:
            self.status_known = True
            self.paper_near_end = status.paper_near_end
            if status.faults:
                raise PrinterError(status.faults[0], f"{self.printer.description} reports {', '.join(status.faults)}")
        self.printer.print(job)
        self._sent_seq = seq  # every byte left: if the agent is stopping now, the job still counts
        # Ask again: a printer unplugged or out of paper mid-ticket shows here, and the job is tried
        # again after recovery rather than counted as printed.
        after = self.printer.status()
        if after is not None and after.faults:
            raise PrinterError(after.faults[0], f"{self.printer.description} reports {', '.join(after.faults)} "
                                                "after the ticket was sent")

    async def _poll(self) -> None:
        while True:
            error: PrinterError | None = None
            async with self._io:
                try:
                    status = await self._device(self.printer.status)
                except PrinterError as exc:
                    error, status = exc, None
            if error is not None:
                self._set_fault(error.reason, error.detail)
            elif status is not None:
                self.status_known = True
                self.paper_near_end = status.paper_near_end
                if status.faults:
                    self._set_fault(status.faults[0], f"{self.printer.description} reports {', '.join(status.faults)}")
                else:
                    self._clear_fault()
                    self._wake.set()  # a job waiting for its retry goes now
            await asyncio.sleep(self.settings.poll_seconds)

    # State changes, each one recorded in the log -------------------------------------------------
    def _set_fault(self, reason: str, detail: str) -> None:
        self.fault_detail = detail
        if self.fault == reason:
            return
        logger.warning("printer fault %s: %s (%d tickets waiting)", reason, detail, len(self.pending))
        self.fault = reason
        with self.core.db.write() as conn:
            events.append(conn, "printer.fault", {"device": "printer", "reason": reason, "detail": detail[:200],
                                                  "pending": len(self.pending)}, self.clock())
        self._notify()

    def _clear_fault(self) -> None:
        self.status_known = True
        if self.fault is None:
            return
        logger.info("printer recovered from %s", self.fault)
        previous, self.fault = self.fault, None
        with self.core.db.write() as conn:
            events.append(conn, "printer.recovered", {"device": "printer", "after": previous,
                                                      "pending": len(self.pending)}, self.clock())
        self._notify()

    def _finish(self, job: JobRequest, state: str, reason: str | None, attempts: int) -> None:
        with self.core.db.write() as conn:
            conn.execute("INSERT OR REPLACE INTO print_jobs (seq, ticket, number, kind, state, attempts, reason, at) "
                         "VALUES (?,?,?,?,?,?,?,?)", (job.seq, job.ticket, job.number,
                                                      "reprint" if job.reprint else job.kind, state, attempts,
                                                      reason, rfc3339(self.clock())))
            self.core.db.meta_set(conn, CURSOR_KEY, str(job.seq))
        if state == "printed":
            self.stats.printed += 1
        elif state == "skipped":
            self.stats.skipped += 1
        self.pending.pop(job.seq, None)
        self._results[job.ticket] = (state, reason)
        while len(self._results) > RECENT_RESULTS:
            self._results.popitem(last=False)
        self._notify()

    def _load_logo(self) -> layout.Picture | None:
        if self.settings.logo is None:
            return None
        try:
            return layout.load_logo(self.core.settings.config_path(self.settings.logo), self.width)
        except ConfigError as exc:
            # The resident's ticket matters more than the ward's logo: print without it, say so loudly.
            logger.error("%s; tickets are printed without a logo", exc)
            return None
