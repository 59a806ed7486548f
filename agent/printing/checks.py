"""The printer's part of `kiosk config check` (nothing opened) and of `kiosk doctor` (asks the printer)."""

from __future__ import annotations

from typing import Any

from agent.errors import KioskError
from agent.printing import layout
from agent.printing.service import fault_message
from agent.printing.wiring import open_configured_printer
from agent.settings import Settings
from devices.printer import PrinterError


def config_problems(settings: Settings) -> list[str]:
    """The logo must be an image and a Vietnamese font must exist, or tickets would print without them."""
    p = settings.printer
    found: list[str] = []
    if not p.enabled:
        return found
    try:
        layout.font(20)
    except KioskError as exc:
        found.append(f"printer: {exc.message}")
    if p.logo is not None:
        try:
            layout.load_logo(settings.config_path(p.logo), p.width_dots())
        except KioskError as exc:
            found.append(f"printer.logo: {exc.message.removeprefix('printer.logo: ')}")
    return found


def probe(settings: Settings) -> tuple[str, str, dict[str, Any]]:
    """(ok|warn|fail, detail, data): the printer's real-time status, asked once."""
    p = settings.printer
    if not p.enabled:
        return "ok", "printing is off (printer.enabled = false)", {}
    printer = open_configured_printer(settings)
    try:
        status = printer.status()
    except PrinterError as exc:
        return "fail", f"{p.device}: {exc.reason} ({exc.detail})", {"reason": exc.reason}
    finally:
        printer.close()
    if status is None:
        return "ok", f"{printer.description}: ready (no status from this kind of device)", {}
    if status.faults:
        return ("fail", f"{p.device}: {', '.join(status.faults)} – {fault_message(status.faults[0])}",
                {"reason": status.faults[0]})
    if status.paper_near_end:
        return "warn", f"{p.device}: ready, paper nearly used up", {"paper_near_end": True}
    return "ok", f"{p.device}: ready ({p.paper_width_mm} mm, {p.width_dots()} dots)", {}
