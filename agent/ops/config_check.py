"""Deeper checks for `kiosk config check`: what pydantic alone cannot see (the catalogue, device
specs, keys, the catalogue codes other settings name). Nothing is opened: no device, no network."""

from __future__ import annotations

from collections.abc import Callable

from agent.errors import KioskError
from agent.queue.catalogue import Catalogue, load_catalogue
from agent.settings import Settings


def problems(settings: Settings) -> list[str]:
    found: list[str] = []

    def check(key: str, probe: Callable[[], object]) -> None:
        try:
            probe()
        except KioskError as exc:
            found.append(f"{key}: {exc.message}")

    catalogue: Catalogue | None = None
    try:
        catalogue = load_catalogue(settings.catalogue_path())
    except KioskError as exc:
        found.append(f"queue.catalogue: {exc.message}")
    from agent.checkin.appointment import load_public_key
    from devices import audio
    from devices.camera import open_source

    check("camera.source", lambda: open_source(settings.camera.source))
    check("voice.sink", lambda: audio.open_sink(settings.voice.sink))
    check("call.speaker", lambda: audio.open_sink(settings.call.speaker))
    check("call.microphone", lambda: audio.open_source(settings.call.microphone))
    for index, server in enumerate(settings.call.ice_servers):
        # An unreadable TURN credential used to leave calls ringing forever: report it before the day.
        check(f"call.ice_servers[{index}]", lambda s=server: (s.password(), s.shared_secret()))  # type: ignore[misc]
    for key_id, text in settings.checkin.appointment_keys.items():
        check(f"checkin.appointment_keys.{key_id}", lambda text=text: load_public_key(text))  # type: ignore[misc]
    if catalogue is not None:
        check("checkin.dossier_service", lambda: catalogue.service(settings.checkin.dossier_service))
        check("checkin.appointment_priority", lambda: catalogue.priority(settings.checkin.appointment_priority))
        check("checkin.elderly_priority", lambda: catalogue.priority(settings.checkin.elderly_priority))
        for number in settings.counter_pins():
            check(f"web.counter_pins.{number}", lambda number=number: catalogue.counter(number))  # type: ignore[misc]
    from agent.printing.checks import config_problems

    found += config_problems(settings)
    return found
