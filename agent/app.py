"""The composition root: every part of the agent is created and started here, in one readable list.

Parts are long-running coroutines that return when `stop` is set; the TaskGroup ends them together
and the AsyncExitStack closes what they used in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from contextlib import AsyncExitStack

from agent import __version__
from agent.clock import Clock, system_clock
from agent.core import Core
from agent.settings import Settings
from agent.store import events

logger = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 15.0


async def sweep_loop(core: Core, stop: asyncio.Event) -> None:
    """Automatic no-shows and end-of-day closing, even when no counter presses anything."""
    while not stop.is_set():
        try:
            changed = core.queue.sweep()
            if changed:
                logger.info("sweep closed %d tickets", changed)
        except Exception:  # a long-lived loop: log with traceback and keep going
            logger.exception("queue sweep failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SWEEP_INTERVAL_S)


def record_start(core: Core, clock: Clock) -> int:
    """Count boots (the MQTT status carries it) and log the start as an event."""
    with core.db.write() as conn:
        boot = int(core.db.meta_get("boot") or 0) + 1
        core.db.meta_set(conn, "boot", str(boot))
        events.append(conn, "agent.started", {"boot": boot, "version": __version__}, clock())
    return boot


async def run_agent(settings: Settings, clock: Clock = system_clock, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with AsyncExitStack() as stack:
        core = Core.open(settings, clock)
        stack.callback(core.close)
        boot = record_start(core, clock)
        logger.info("agent %s started: ward %s kiosk %s boot %d db %s", __version__, settings.device.ward,
                    settings.device.kiosk, boot, settings.db_path())
        async with asyncio.TaskGroup() as tg:
            tg.create_task(sweep_loop(core, stop))
            await stop.wait()
    logger.info("agent stopped")
