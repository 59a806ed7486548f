"""Assembling the print service for the daemon (and the bench)."""

from __future__ import annotations

from pathlib import Path

from agent.clock import Clock
from agent.core import Core
from agent.printing.service import PrintService
from agent.settings import Settings
from agent.store.feed import EventFeed
from devices.printer import Printer, open_printer


def printer_base(settings: Settings) -> Path:
    """`file:DIR` relative to the config file's folder, like every path in the settings."""
    return settings.config_file.parent if settings.config_file is not None else settings.data_dir()


def open_configured_printer(settings: Settings) -> Printer:
    p = settings.printer
    return open_printer(p.device, printer_base(settings), status_timeout=p.status_timeout_seconds)


def build_print_service(core: Core, feed: EventFeed, clock: Clock) -> PrintService | None:
    if not core.settings.printer.enabled:
        return None
    return PrintService(core, feed, open_configured_printer(core.settings), clock)
