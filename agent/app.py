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
from dataclasses import dataclass

from agent import __version__
from agent.checkin.runtime import device_events, make_checkin
from agent.checkin.scanner import Scanner
from agent.checkin.service import CheckinService
from agent.clock import Clock, system_clock
from agent.core import Core
from agent.demo_payloads import demo_payloads
from agent.ops.systemd import Liveness, Notifier, watchdog_interval, watchdog_loop
from agent.settings import Settings
from agent.store import events
from agent.store.feed import EventFeed
from agent.voice.wiring import build_announcer, run_announcer
from agent.web.server import WebServer
from devices.camera import open_source
from devices.capture import SharedCamera
from devices.decoders import PipelineDecoder

logger = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 15.0


@dataclass
class Agent:
    """What the parts share; built once by `run_agent`."""

    settings: Settings
    clock: Clock
    core: Core
    feed: EventFeed
    checkin: CheckinService
    camera: SharedCamera | None
    boot: int
    liveness: Liveness


async def sweep_loop(agent: Agent, stop: asyncio.Event) -> None:
    """Automatic no-shows, end-of-day closing and check-in expiry, even when nobody presses anything."""
    agent.liveness.register("sweep", SWEEP_INTERVAL_S * 3)
    while not stop.is_set():
        agent.liveness.beat("sweep")
        try:
            changed = agent.core.queue.sweep()
            if changed:
                logger.info("sweep closed %d tickets", changed)
            agent.checkin.prune()
        except Exception:  # a long-lived loop: log with traceback and keep going
            logger.exception("queue sweep failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SWEEP_INTERVAL_S)


async def feed_loop(agent: Agent, stop: asyncio.Event) -> None:
    """Notice other processes' commits (CLI calls) so every consumer of the log sees them."""
    agent.liveness.register("feed", 10.0)
    await agent.feed.poll(stop, beat=lambda: agent.liveness.beat("feed"))


async def scanner_loop(agent: Agent, stop: asyncio.Event) -> None:
    assert agent.camera is not None
    settings = agent.settings.checkin

    async def handle(text: str) -> None:
        decision = agent.checkin.handle(text)
        logger.info("check-in %s: %s %s", decision.kind, "accepted" if decision.accepted else "rejected",
                    decision.code)

    scanner = Scanner(agent.camera, PipelineDecoder(budget_ms=settings.decode_budget_ms), handle,
                      rate=settings.scan_rate, debounce_s=settings.debounce_seconds)
    await scanner.run(stop)


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
        feed = EventFeed(core.db)
        stack.callback(feed.close)
        camera = None
        if settings.camera.enabled:
            fault, recovered = device_events(core, clock, "camera")
            camera = SharedCamera(open_source(settings.camera.source, demo_payloads=demo_payloads(settings)),
                                  on_fault=fault, on_recovered=recovered)
            await camera.start()
            stack.push_async_callback(camera.stop)
        notifier = Notifier()
        stack.callback(notifier.close)
        agent = Agent(settings, clock, core, feed, make_checkin(core, clock), camera, boot, Liveness())
        announcer = build_announcer(settings) if settings.voice.enabled else None
        web = WebServer(core, feed, announcer=announcer, clock=clock, identities=agent.checkin)
        await web.start()  # bound before READY: the screens work as soon as systemd says so
        stack.push_async_callback(web.stop)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(feed_loop(agent, stop))
            tg.create_task(sweep_loop(agent, stop))
            if camera is not None:
                tg.create_task(scanner_loop(agent, stop))
            if announcer is not None:
                tg.create_task(run_announcer(core, feed, stop, announcer))
            interval = watchdog_interval()
            if interval is not None:
                tg.create_task(watchdog_loop(notifier, agent.liveness, interval, stop))
            # READY once the store, the camera and the parts' servers are up.
            notifier.notify("READY=1", f"STATUS=ward {settings.device.ward} kiosk {settings.device.kiosk} "
                            f"boot {boot}")
            logger.info("agent %s started: ward %s kiosk %s boot %d db %s", __version__, settings.device.ward,
                        settings.device.kiosk, boot, settings.db_path())
            await stop.wait()
            notifier.notify("STOPPING=1")
    logger.info("agent stopped")
