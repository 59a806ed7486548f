"""Assembling the check-in parts for the daemon and for `kiosk qr scan`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.checkin import privacy
from agent.checkin.scanner import Scanner
from agent.checkin.service import CheckinService
from agent.clock import Clock, system_clock
from agent.core import Core
from agent.errors import StorageError
from agent.settings import Settings
from agent.store import events
from devices.camera import open_source
from devices.capture import SharedCamera
from devices.decoders import PipelineDecoder

logger = logging.getLogger(__name__)


def privacy_key_path(settings: Settings) -> Path:
    """Where the ID-card hashing key lives: a systemd credential ($CREDENTIALS_DIRECTORY) or the
    `credentials/` folder beside the config file; without either, a `credentials/` folder beside
    (never inside) the data folder. A copy of the data folder alone must not reverse the hashes."""
    key_file = settings.checkin.key_file
    path = settings.secret_path(key_file)
    if not path.is_absolute():
        path = settings.data_dir().parent / "credentials" / key_file
    return path.resolve()


def make_checkin(core: Core, clock: Clock = system_clock) -> CheckinService:
    settings = core.settings.checkin
    key_path = privacy_key_path(core.settings)
    data_dir = core.settings.data_dir()
    if key_path == data_dir or data_dir in key_path.parents:
        raise StorageError(f"privacy key {key_path} must be outside the data folder {data_dir} "
                           "(set [checkin] key_file to a credential name or a path elsewhere)")
    key = privacy.load_or_create_key(key_path)
    legacy = data_dir / "privacy.key"  # where versions before 2026-11 kept it, next to the hashes
    if legacy.exists():
        try:
            legacy.unlink()
        except OSError as exc:
            raise StorageError(f"cannot remove the old privacy key {legacy}: {exc.strerror}") from exc
        logger.info("removed the old privacy key from the data folder; earlier ID-card hashes are now unlinkable")
    return CheckinService(core, settings, key, clock)


def device_events(core: Core, clock: Clock, device: str) -> tuple[Callable[[str, str], None], Callable[[], None]]:
    """Callbacks that turn a device's fault/recovery into `device.fault` / `device.recovered` events."""

    def fault(kind: str, detail: str) -> None:
        logger.warning("%s fault: %s (%s)", device, kind, detail)
        with core.db.write() as conn:
            events.append(conn, "device.fault", {"device": device, "fault": kind, "detail": detail[:200]}, clock())

    def recovered() -> None:
        logger.info("%s recovered", device)
        with core.db.write() as conn:
            events.append(conn, "device.recovered", {"device": device}, clock())

    return fault, recovered


async def scan_source(core: Core, source: str, show: Callable[[dict[str, Any]], None], seconds: float = 0) -> None:
    """`kiosk qr scan`: run one camera + scanner + check-in until `seconds` pass (0: forever)."""
    from agent.demo_payloads import demo_payloads

    checkin = make_checkin(core)
    fault, recovered = device_events(core, system_clock, "camera")
    camera = SharedCamera(open_source(source, demo_payloads=demo_payloads(core.settings)), on_fault=fault,
                          on_recovered=recovered)

    async def handle(text: str) -> None:
        show(checkin.handle(text).public())

    stop = asyncio.Event()
    scanner = Scanner(camera, PipelineDecoder(budget_ms=core.settings.checkin.decode_budget_ms), handle,
                      rate=core.settings.checkin.scan_rate, debounce_s=core.settings.checkin.debounce_seconds)
    await camera.start()
    try:
        task = asyncio.create_task(scanner.run(stop))
        if seconds:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), seconds)
        else:
            await task
    finally:
        stop.set()
        await task
        await camera.stop()
