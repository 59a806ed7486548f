"""`run_sync`: the MQTT part of the agent (status, outbox, telemetry, commands), one TaskGroup.

The lead's composition root adds it with one line; other parts extend it through the registries
they are given (`SyncHooks`): telemetry fields, runtime settings for `set`, more commands.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import Field

from agent import __version__
from agent.clock import rfc3339
from agent.core import Core
from agent.mqtt_client import MqttClient, MqttOptions, Will
from agent.settings import Settings
from agent.store.feed import EventFeed
from agent.sync.commands import CommandRegistry, Commands, NoArgs, ResyncArgs, SetArgs
from agent.sync.outbox import Outbox
from agent.sync.runtime import RuntimeSettings
from agent.sync.telemetry import Telemetry, TelemetryRegistry
from agent.sync.topics import KioskTopics

logger = logging.getLogger(__name__)


@dataclass
class SyncHooks:
    """What other parts may add to before `run_sync` starts."""

    telemetry: TelemetryRegistry = field(default_factory=TelemetryRegistry)
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)
    commands: CommandRegistry = field(default_factory=CommandRegistry)


def kiosk_topics(settings: Settings) -> KioskTopics:
    return KioskTopics(settings.mqtt.root, settings.device.ward, settings.device.kiosk)


def status_body(state: str, boot: int, at: str) -> bytes:
    return json.dumps({"state": state, "at": at, "version": __version__, "boot": boot},
                      separators=(",", ":")).encode()


def mqtt_options(settings: Settings, boot: int) -> MqttOptions:
    m = settings.mqtt
    topics = kiosk_topics(settings)
    will = Will(topics.status, status_body("offline", boot, ""), qos=1, retain=True)
    return MqttOptions(
        url=m.url, client_id=f"kiosk-{settings.device.ward}-{settings.device.kiosk}", protocol=m.protocol,
        keepalive=m.keepalive, username=m.username, password=settings.mqtt_password(),
        ca_file=settings.config_path(m.ca_file) if m.ca_file else None,
        cert_file=settings.config_path(m.cert_file) if m.cert_file else None,
        key_file=settings.secret_path(m.key_file) if m.key_file else None, will=will,
        inflight=m.inflight_window, reconnect_min=m.reconnect_min, reconnect_max=m.reconnect_max,
        publish_timeout=m.publish_timeout)


@dataclass
class Sync:
    """The parts of one running sync, for the `status` command and for tests."""

    client: MqttClient
    outbox: Outbox
    telemetry: Telemetry
    commands: Commands
    boot: int

    async def run(self, stop: asyncio.Event) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.client.run(stop))
                tg.create_task(self.outbox.run(stop))
                tg.create_task(self.telemetry.run(stop))
        finally:
            await self.commands.drain()


def build_sync(core: Core, hooks: SyncHooks, feed: EventFeed, options: MqttOptions | None = None) -> Sync:
    s = core.settings
    topics = kiosk_topics(s)
    boot = int(core.db.meta_get("boot") or 0)
    client = MqttClient(options or mqtt_options(s, boot))
    outbox = Outbox(core.db, feed, client, topics, s.mqtt, s.storage.event_retention_days, core.queue.clock)
    telemetry = Telemetry(client, topics, outbox, s.telemetry, hooks.telemetry, s.data_dir(),
                          lambda: len(core.queue.waiting()), boot, core.queue.clock)
    commands = Commands(client, topics, hooks.commands, s.mqtt.command_max_bytes)
    sync = Sync(client, outbox, telemetry, commands, boot)
    _register_builtins(core, hooks, sync)
    client.subscribe(topics.ack, outbox.handle_ack)
    client.subscribe(topics.commands, commands.handle)

    def online() -> None:
        fut = client.publish(topics.status, status_body("online", boot, rfc3339(core.queue.clock())), 1, True)
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())

    client.on_connect(online)
    client.before_disconnect(
        lambda: client.publish(topics.status, status_body("offline", boot, rfc3339(core.queue.clock())), 1, True))
    return sync


def _register_builtins(core: Core, hooks: SyncHooks, sync: Sync) -> None:
    Interval = Annotated[float, Field(ge=1, le=3600)]
    hooks.runtime.add("telemetry.interval", Interval, lambda: sync.telemetry.interval, sync.telemetry.set_interval,
                      "Seconds between telemetry messages.")

    def status(_: NoArgs) -> dict[str, Any]:
        return {"version": __version__, "boot": sync.boot, "ward": core.settings.device.ward,
                "kiosk": core.settings.device.kiosk, "outbox": sync.outbox.stats(),
                "mqtt": {"connects": sync.client.connects}, "settings": hooks.runtime.values(),
                "commands": hooks.commands.names()}

    def set_(args: SetArgs) -> dict[str, Any]:
        return {"name": args.name, "value": hooks.runtime.set(args.name, args.value)}

    def resync(args: ResyncArgs) -> dict[str, Any]:
        return {"from": sync.outbox.resync(args.from_seq)}

    reg = hooks.commands
    reg.add("ping", NoArgs, lambda _: {"pong": True, "at": rfc3339(core.queue.clock())}, "Is the agent alive?")
    reg.add("status", NoArgs, status, "Version, boot, outbox figures, runtime settings.")
    reg.add("queue-snapshot", NoArgs, lambda _: core.queue.snapshot(), "The whole queue, as the screens see it.")
    reg.add("resync", ResyncArgs, resync, "Publish the event log again from a seq.")
    reg.add("set", SetArgs, set_, "Change a whitelisted runtime setting.")


async def run_sync(core: Core, stop: asyncio.Event, hooks: SyncHooks | None = None,
                   feed: EventFeed | None = None, options: MqttOptions | None = None) -> None:
    """Run until `stop` is set: connect, publish status, drain the outbox, telemetry, commands."""
    if not core.settings.mqtt.enabled:
        logger.info("MQTT sync disabled (mqtt.enabled = false)")
        await stop.wait()
        return
    own_feed = feed is None
    feed = feed or EventFeed(core.db)
    sync = build_sync(core, hooks or SyncHooks(), feed, options)
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(sync.run(stop))
            if own_feed:
                tg.create_task(feed.poll(stop))
    finally:
        if own_feed:
            feed.close()
