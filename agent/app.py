"""The composition root: every part of the agent is created and started here, in one readable list.

Parts are long-running coroutines that return when `stop` is set; the TaskGroup ends them together
and the AsyncExitStack closes what they used in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
from collections import Counter
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import Field

from agent import __version__
from agent.calls.mqtt_transport import MqttSignalTransport
from agent.calls.service import CallService
from agent.calls.signalling import CallTopics
from agent.calls.web import call_routes, officer_routes
from agent.checkin.runtime import device_events, make_checkin
from agent.checkin.scanner import Scanner
from agent.checkin.service import CheckinService
from agent.clock import Clock, system_clock
from agent.core import Core
from agent.demo_payloads import demo_payloads
from agent.ops.systemd import Liveness, Notifier, publish_screen_url, watchdog_interval, watchdog_loop
from agent.printing.service import PrintService
from agent.printing.web import printer_routes
from agent.printing.wiring import build_print_service
from agent.settings import Settings
from agent.store import events
from agent.store.diskguard import DiskGuard
from agent.store.feed import EventFeed
from agent.sync.runner import Sync, SyncHooks, build_sync
from agent.voice.announcer import Announcer
from agent.voice.wiring import build_announcer, rotate_wavs, run_announcer, sink_spec, wav_folder
from agent.web.metrics import Snapshot, WebMetrics
from agent.web.server import WebServer
from devices import audio
from devices.camera import open_source
from devices.capture import SharedCamera
from devices.decoders import DurationHistogram, PipelineDecoder, TimedDecoder

logger = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 15.0
# The scanner beats at least every 5 s idle; one decode is bounded by its budget, a check-in by the store.
SCANNER_MAX_SILENCE_S = 30.0
# The printer worker beats per attempt; one attempt is bounded by the device timeouts.
PRINTER_MAX_SILENCE_S = 60.0


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
    hooks: SyncHooks
    scanner: Scanner | None = None
    # Decode times and check-in decisions of the scanner, for telemetry and /metrics.
    decode_times: DurationHistogram = field(default_factory=DurationHistogram)
    decisions: Counter[str] = field(default_factory=Counter)
    disk: DiskGuard | None = None  # free space of the data folder, checked with each sweep


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
            if agent.disk is not None:
                agent.disk.check()
            folder = wav_folder(agent.settings)
            if folder is not None:
                voice = agent.settings.voice
                rotate_wavs(folder, voice.wav_keep_files, int(voice.wav_keep_mb * 1e6))
        except Exception:  # a long-lived loop: log with traceback and keep going
            logger.exception("queue sweep failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SWEEP_INTERVAL_S)


async def feed_loop(agent: Agent, stop: asyncio.Event) -> None:
    """Notice other processes' commits (CLI calls) so every consumer of the log sees them."""
    agent.liveness.register("feed", 10.0)
    await agent.feed.poll(stop, beat=lambda: agent.liveness.beat("feed"))


def make_scanner(agent: Agent) -> Scanner:
    assert agent.camera is not None
    settings = agent.settings.checkin

    async def handle(text: str) -> None:
        decision = agent.checkin.handle(text)
        agent.decisions[f"{decision.kind}:{'accepted' if decision.accepted else 'rejected'}"] += 1
        logger.info("check-in %s: %s %s", decision.kind, "accepted" if decision.accepted else "rejected",
                    decision.code)

    decoder = TimedDecoder(PipelineDecoder(budget_ms=settings.decode_budget_ms), agent.decode_times)
    return Scanner(agent.camera, decoder, handle,
                   rate=settings.scan_rate, debounce_s=settings.debounce_seconds)


def record_start(core: Core, clock: Clock) -> int:
    """Count boots (the MQTT status carries it) and log the start as an event."""
    with core.db.write() as conn:
        boot = int(core.db.meta_get("boot") or 0) + 1
        core.db.meta_set(conn, "boot", str(boot))
        events.append(conn, "agent.started", {"boot": boot, "version": __version__}, clock())
    return boot


def register_storage_hooks(hooks: SyncHooks, core: Core, disk: DiskGuard | None) -> None:
    """The storage's state in telemetry: a recovery from a corrupt database stays visible until restart;
    the disk guard's last measure."""
    recovery = core.recovery
    hooks.telemetry.add("storage", lambda: {"recovered": recovery.public() if recovery is not None else None,
                                             "disk": disk.public() if disk is not None else None})


def register_printer_hooks(hooks: SyncHooks, printing: PrintService | None) -> None:
    """The printer's health in telemetry (`kiosk fleet status` alerts on it)."""
    if printing is not None:
        hooks.telemetry.add("printer", printing.state)


def register_hooks(agent: Agent, announcer: Announcer | None, calls: CallService | None) -> None:
    """What each part tells central through telemetry, and the runtime settings `set` may change."""
    hooks = agent.hooks
    if agent.camera is not None:
        camera = agent.camera
        hooks.telemetry.add("camera", lambda: dataclasses.asdict(camera.stats()))
    if agent.scanner is not None:
        scanner = agent.scanner
        hooks.telemetry.add("scanner", lambda: {**dataclasses.asdict(scanner.stats),
                                                 "decode_seconds": agent.decode_times.snapshot(),
                                                 "decisions": dict(agent.decisions)})
    if announcer is not None:
        hooks.telemetry.add("announcer", lambda: {"played": announcer.played, "dropped": announcer.dropped,
                                                   "volume": announcer.config.volume,
                                                   "skipped_quiet": announcer.skipped_quiet,
                                                   "failed": announcer.failed, "queue_length": announcer.pending})

        def set_volume(value: float) -> None:
            announcer.config = dataclasses.replace(announcer.config, volume=value)

        hooks.runtime.add("announcer.volume", Annotated[float, Field(ge=0, le=1)],
                          lambda: announcer.config.volume, set_volume, "Loudness of the call-outs, 0..1.")
    if calls is not None:
        hooks.telemetry.add("call", lambda: calls.state() or {"state": "idle"})


def metrics_snapshot(agent: Agent, sync: Sync | None) -> Snapshot:
    """What `/metrics` shows beyond the web server's own series: the telemetry sources themselves, plus
    the outbox and MQTT figures telemetry reads from the same objects, so the two never disagree."""
    snap = agent.hooks.telemetry.collect()
    if sync is not None:
        snap["outbox"] = sync.outbox.stats()
        snap["mqtt"] = {"connected": sync.client.is_connected, "connects": sync.client.connects}
    return snap


def make_calls(agent: Agent, sync: Sync | None) -> CallService | None:
    s = agent.settings
    if not s.call.enabled or sync is None or agent.camera is None:
        return None
    return CallService(db=agent.core.db, settings=s.call,
                       topics=CallTopics(s.mqtt.root, s.device.ward, s.device.kiosk),
                       transport=MqttSignalTransport(sync.client), camera=agent.camera,
                       microphone=audio.open_source(s.call.microphone),
                       speaker=audio.open_stream_sink(sink_spec(s, s.call.speaker)),
                       clock=agent.clock)


async def run_agent(settings: Settings, clock: Clock = system_clock, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with AsyncExitStack() as stack:
        # The store and the event log everything else consumes.
        core = Core.open(settings, clock, recover=True)  # a corrupt database is kept aside, not crash-looped on
        stack.callback(core.close)
        boot = record_start(core, clock)
        feed = EventFeed(core.db)
        stack.callback(feed.close)
        # The camera, opened once, shared by the QR scanner and the video calls.
        camera = None
        if settings.camera.enabled:
            fault, recovered = device_events(core, clock, "camera")
            camera = SharedCamera(open_source(settings.camera.source, demo_payloads=demo_payloads(settings)),
                                  on_fault=fault, on_recovered=recovered)
            await camera.start()
            stack.push_async_callback(camera.stop)
        notifier = Notifier()
        stack.callback(notifier.close)
        agent = Agent(settings, clock, core, feed, make_checkin(core, clock), camera, boot, Liveness(), SyncHooks())
        agent.scanner = make_scanner(agent) if camera is not None else None
        # MQTT sync (outbox, status, telemetry, commands) and the calls signalled through it.
        sync = build_sync(core, agent.hooks, feed) if settings.mqtt.enabled else None
        calls = make_calls(agent, sync)
        if calls is not None:
            await stack.enter_async_context(calls)
        # Voice and screens.
        announcer = build_announcer(settings) if settings.voice.enabled else None
        routes: list[Any] = [*call_routes(calls), *officer_routes(settings)] if calls is not None else []
        # Printed tickets: a consumer of the log like the announcer; never in the way of issuing.
        printing = build_print_service(core, feed, clock)
        routes += printer_routes(core, printing, clock)
        metrics = WebMetrics(labels={"ward": settings.device.ward, "kiosk": settings.device.kiosk},
                             snapshot=lambda: metrics_snapshot(agent, sync))
        web = WebServer(core, feed, announcer=announcer, clock=clock, identities=agent.checkin, extra_routes=routes,
                        metrics=metrics)
        await web.start()  # bound before READY: the screens work as soon as systemd says so
        publish_screen_url(web.host, web.port)  # kiosk-screen.service opens this URL
        stack.push_async_callback(web.stop)
        register_hooks(agent, announcer, calls)
        register_printer_hooks(agent.hooks, printing)
        agent.disk = DiskGuard(core.db, clock, settings.telemetry.disk_low_mb, settings.telemetry.disk_reserve_mb)
        register_storage_hooks(agent.hooks, core, agent.disk)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(feed_loop(agent, stop))
            tg.create_task(sweep_loop(agent, stop))
            if agent.scanner is not None:
                agent.liveness.register("scanner", SCANNER_MAX_SILENCE_S)
                tg.create_task(agent.scanner.run(stop, beat=lambda: agent.liveness.beat("scanner"),
                                                 tick_s=SCANNER_MAX_SILENCE_S / 6))
            if announcer is not None:
                tg.create_task(run_announcer(core, feed, stop, announcer))
            if printing is not None:
                agent.liveness.register("printer", PRINTER_MAX_SILENCE_S)
                tg.create_task(printing.run(stop, beat=lambda: agent.liveness.beat("printer"),
                                            tick_s=PRINTER_MAX_SILENCE_S / 6))
            if sync is not None:
                tg.create_task(sync.run(stop))
            interval = watchdog_interval()
            if interval is not None:
                tg.create_task(watchdog_loop(notifier, agent.liveness, interval, stop))
            notifier.notify("READY=1", f"STATUS=ward {settings.device.ward} kiosk {settings.device.kiosk} "
                            f"boot {boot}")
            logger.info("agent %s started: ward %s kiosk %s boot %d db %s, screens on %s", __version__,
                        settings.device.ward, settings.device.kiosk, boot, settings.db_path(), web.url)
            await stop.wait()
            notifier.notify("STOPPING=1")
    logger.info("agent stopped")
