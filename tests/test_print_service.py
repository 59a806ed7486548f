"""The print service end to end: kiosk touch → event log → ESC/POS emulator on TCP → QR read back;
paper end seen, told to the resident, recovered; restarts neither lose nor double-print; reprints."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import numpy as np
import pytest

from agent.app import register_printer_hooks
from agent.checkin import privacy
from agent.checkin.runtime import make_checkin
from agent.checkin.service import CheckinService
from agent.clock import system_clock
from agent.core import Core
from agent.printing.service import PrintService
from agent.printing.web import printer_routes
from agent.printing.wiring import open_configured_printer
from agent.settings import CheckinSettings, Settings, load_settings
from agent.store import events
from agent.store.feed import EventFeed
from agent.sync.runner import SyncHooks
from agent.web.metrics import WebMetrics
from agent.web.server import WebServer
from devices.decoders import PipelineDecoder
from tests import checkin_samples as samples
from tests.conftest import CATALOGUE, run_kiosk
from tests.printer_emulator import TcpPrinterEmulator, tcp_printer

PIN = {"Authorization": "Bearer 4821"}


def print_settings(tmp_path: Path, device: str, **printer: Any) -> Settings:
    return load_settings(storage={"data_dir": str(tmp_path / "data")},
                         queue={"enforce_hours": False, "catalogue": str(CATALOGUE)},
                         web={"counter_pins": {1: "4821"}},
                         printer={"enabled": True, "device": device, "poll_seconds": 0.2,
                                  "status_timeout_seconds": 0.3, "retry_max_seconds": 0.5, **printer})


@dataclass
class Kiosk:
    core: Core
    feed: EventFeed
    service: PrintService
    http: aiohttp.ClientSession
    stop: asyncio.Event
    task: asyncio.Task[None]

    async def call(self, method: str, path: str, body: Any = None,
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:
        async with self.http.request(method, path, json=body, headers=headers) as res:
            text = await res.text()
            return res.status, (json.loads(text) if res.content_type == "application/json" else text)

    def events(self, type_: str) -> list[events.Event]:
        return [e for e in events.since(self.core.db.conn, 0, 100_000) if e.type == type_]

    async def wait_event(self, type_: str, count: int = 1, timeout: float = 10) -> list[events.Event]:
        async def until() -> list[events.Event]:
            while len(found := self.events(type_)) < count:
                await self.feed.changed(0.2)
            return found

        return await asyncio.wait_for(until(), timeout)

    def jobs(self) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.core.db.conn.execute(
            "SELECT number, kind, state, attempts, reason FROM print_jobs ORDER BY seq")]


@pytest.fixture
async def kiosk_factory(tmp_path: Path) -> AsyncIterator[Any]:
    """Starts the real core, print service and web server; several times over the same data dir."""
    started: list[tuple[Kiosk, WebServer]] = []

    async def start(device: str, **printer: Any) -> Kiosk:
        settings = print_settings(tmp_path, device, **printer)
        core = Core.open(settings)
        feed = EventFeed(core.db, poll_interval=0.05)
        service = PrintService(core, feed, open_configured_printer(settings), system_clock)
        server = WebServer(core, feed, host="127.0.0.1", port=0, extra_routes=printer_routes(core, service,
                                                                                              system_clock),
                           metrics=WebMetrics(snapshot=lambda: {"printer": service.state()}))
        await server.start()
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        kiosk = Kiosk(core, feed, service, aiohttp.ClientSession(server.url), stop, task)
        started.append((kiosk, server))
        return kiosk

    async def halt(kiosk: Kiosk) -> None:
        for entry in [e for e in started if e[0] is kiosk]:
            started.remove(entry)
            k, server = entry
            k.stop.set()
            await asyncio.wait_for(k.task, 5)  # the service stops promptly, whatever it was doing
            await k.http.close()
            await server.stop()
            k.feed.close()
            k.core.close()

    start.halt = halt  # type: ignore[attr-defined]
    yield start
    for kiosk, _ in list(started):
        await halt(kiosk)


def qr_texts(image: np.ndarray[Any, Any]) -> list[str]:
    return [d.text for d in PipelineDecoder().decode(np.ascontiguousarray(image))]


async def wait_printed(server: TcpPrinterEmulator, count: int) -> list[Any]:
    return await asyncio.to_thread(server.emulator.wait_tickets, count, 10.0)


async def test_a_touch_prints_a_ticket_whose_qr_reads_back(kiosk_factory: Any) -> None:
    with tcp_printer() as printer:
        kiosk = await kiosk_factory(printer.url)
        status, ticket = await kiosk.call("POST", "/api/tickets", {"service": "khai-sinh", "priority": "cao-tuoi"})
        assert status == 201
        printed = await wait_printed(printer, 1)
        assert qr_texts(printed[0].image) == [f"WKT1:{ticket['id']}"]
        status, state = await kiosk.call("GET", f"/api/printer/tickets/{ticket['id']}?wait=5")
        assert status == 200 and state["state"] == "printed" and "message" not in state
        assert kiosk.jobs() == [(ticket["number"], "ticket", "printed", 1, None)]
        status, overall = await kiosk.call("GET", "/api/printer")
        assert overall["state"] == "ok" and overall["printed"] == 1
        hooks = SyncHooks()
        register_printer_hooks(hooks, kiosk.service)  # what the daemon publishes in telemetry
        telemetry = hooks.telemetry.collect()["printer"]
        assert telemetry["state"] == "ok" and telemetry["fault"] is None and telemetry["printed"] == 1
        status, metrics = await kiosk.call("GET", "/metrics")
        assert "kiosk_printer_up 1" in metrics and "kiosk_printer_printed_total 1" in metrics
        # The screen's preview is the same layout, as a PNG.
        async with kiosk.http.get(f"/api/tickets/{ticket['id']}/ticket.png") as res:
            assert res.status == 200 and res.content_type == "image/png"
            assert (await res.read())[:8] == b"\x89PNG\r\n\x1a\n"
        # A ticket taken with the CLI (source cli) is not printed.
        kiosk.core.queue.take("khai-sinh", source="cli")
        status, third = await kiosk.call("POST", "/api/tickets", {"service": "khai-sinh"})
        printed = await wait_printed(printer, 2)
        assert len(printed) == 2 and qr_texts(printed[1].image) == [f"WKT1:{third['id']}"]


async def test_paper_end_is_raised_told_to_the_resident_and_recovered(kiosk_factory: Any) -> None:
    with tcp_printer() as printer:
        printer.emulator.state.paper_end = True
        kiosk = await kiosk_factory(printer.url)
        fault = (await kiosk.wait_event("printer.fault"))[0]
        assert fault.data["reason"] == "paper_end"
        status, ticket = await kiosk.call("POST", "/api/tickets", {"service": "khai-sinh"})
        assert status == 201  # the ticket is issued all the same
        tid = ticket["id"]
        status, state = await kiosk.call("GET", f"/api/printer/tickets/{tid}?wait=5")
        assert state["state"] == "pending" and state["reason"] == "paper_end"
        assert "hết giấy" in state["message"] and "vẫn được cấp" in state["message"]
        status, metrics = await kiosk.call("GET", "/metrics")
        assert 'kiosk_printer_fault{reason="paper_end"} 1' in metrics and "kiosk_printer_up 0" in metrics
        assert kiosk.service.state()["state"] == "fault" and kiosk.service.state()["pending"] == 1
        assert printer.emulator.tickets == []
        printer.emulator.state.paper_end = False  # paper is back
        recovered = (await kiosk.wait_event("printer.recovered"))[0]
        assert recovered.data["after"] == "paper_end"
        printed = await wait_printed(printer, 1)
        assert qr_texts(printed[0].image) == [f"WKT1:{tid}"]
        status, state = await kiosk.call("GET", f"/api/printer/tickets/{tid}?wait=5")
        assert state["state"] == "printed"
        assert len(kiosk.events("printer.fault")) == 1  # one fault event, not one per poll


async def test_restart_neither_loses_nor_double_prints(kiosk_factory: Any) -> None:
    with tcp_printer() as printer:
        printer.accepting = False  # the printer is unplugged: connections close at once
        first = await kiosk_factory(printer.url)
        numbers = []
        for _ in range(2):
            status, ticket = await first.call("POST", "/api/tickets", {"service": "khai-sinh"})
            assert status == 201
            numbers.append(ticket["id"])
        await first.wait_event("printer.fault")
        await kiosk_factory.halt(first)  # the agent stops with two tickets unprinted
        printer.accepting = True
        second = await kiosk_factory(printer.url)
        printed = await wait_printed(printer, 2)
        assert [qr_texts(t.image) for t in printed] == [[f"WKT1:{n}"] for n in numbers]
        # The fault outlived the restart (it is in the log), so its end is recorded too.
        assert (await second.wait_event("printer.recovered"))[0].data["after"] == "disconnected"
        await kiosk_factory.halt(second)
        third = await kiosk_factory(printer.url)
        status, ticket = await third.call("POST", "/api/tickets", {"service": "khai-sinh"})
        printed = await wait_printed(printer, 3)
        assert len(printed) == 3  # the first two were not printed again after the second restart
        assert qr_texts(printed[2].image) == [f"WKT1:{ticket['id']}"]
        status, state = await third.call("GET", f"/api/printer/tickets/{ticket['id']}?wait=5")
        assert state["state"] == "printed"
        assert [row[2] for row in third.jobs()] == ["printed"] * 3


async def test_unplugged_mid_ticket_is_printed_again_whole(kiosk_factory: Any) -> None:
    with tcp_printer() as printer:
        printer.emulator.state.drop_after = 5000
        kiosk = await kiosk_factory(printer.url)
        status, ticket = await kiosk.call("POST", "/api/tickets", {"service": "khai-sinh"})
        assert status == 201
        await wait_printed(printer, 1)
        _status, state = await kiosk.call("GET", f"/api/printer/tickets/{ticket['id']}?wait=5")
        assert state["state"] == "printed"
        await kiosk.wait_event("printer.recovered")
        assert kiosk.events("printer.fault")[0].data["reason"] in ("disconnected", "no_response")
        (_number, _kind, state, attempts, _reason), = kiosk.jobs()
        assert state == "printed" and attempts >= 2


async def test_counter_and_cli_reprint_and_checkins_print(kiosk_factory: Any, tmp_path: Path) -> None:
    with tcp_printer() as printer:
        kiosk = await kiosk_factory(printer.url)
        status, ticket = await kiosk.call("POST", "/api/tickets", {"service": "khai-sinh"})
        await wait_printed(printer, 1)
        status, _called = await kiosk.call("POST", "/api/counters/1/next", {}, PIN)
        assert status == 200
        status, body = await kiosk.call("POST", "/api/printer/counters/1/reprint", {}, {"Authorization": "Bearer 0"})
        assert status == 401
        status, body = await kiosk.call("POST", "/api/printer/counters/1/reprint", {"extra": 1}, PIN)
        assert status == 422
        status, body = await kiosk.call("POST", "/api/printer/counters/1/reprint", {}, PIN)
        assert status == 202 and ticket["number"] in body["note"]
        printed = await wait_printed(printer, 2)
        assert qr_texts(printed[1].image) == [f"WKT1:{ticket['id']}"]
        # The CLI, another process, asks the running agent's printer for a copy.
        env = {"KIOSK_STORAGE__DATA_DIR": str(tmp_path / "data"), "KIOSK_QUEUE__ENFORCE_HOURS": "false",
               "KIOSK_QUEUE__CATALOGUE": str(CATALOGUE), "KIOSK_PRINTER__ENABLED": "true",
               "KIOSK_PRINTER__DEVICE": printer.url}
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("KIOSK_")}, **env}
        proc = await asyncio.to_thread(run_kiosk, env, "ticket", "print", ticket["number"], "--json")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["state"] == "printed"
        missing = await asyncio.to_thread(run_kiosk, env, "ticket", "print", "Z999")
        assert missing.returncode == 1 and missing.stderr.count("\n") == 1
        # A dossier receipt shown to the camera prints a ticket for the result-return service.
        decision = make_checkin(kiosk.core).handle("000.00.19.H56-261130-0001")
        assert decision.accepted
        printed = await wait_printed(printer, 4)
        dossier = kiosk.events("ticket.issued")[-1].data
        assert dossier["source"] == "dossier" and qr_texts(printed[3].image) == [f"WKT1:{dossier['ticket']}"]
        assert (await kiosk.service.wait_ticket(dossier["ticket"], 5))["state"] == "printed"
        # A signed appointment shown to the camera prints its priority ticket too.
        local = datetime.now(ZoneInfo("Asia/Ho_Chi_Minh"))
        appointments = CheckinService(kiosk.core, CheckinSettings(appointment_keys=samples.PUBLIC),  # type: ignore[call-arg]
                                      privacy.load_or_create_key(tmp_path / "privacy.key"), system_clock)
        booked = appointments.handle(samples.token(day=local.date(), slot=f"{local:%H:%M}"))
        assert booked.accepted and booked.ticket is not None
        printed = await wait_printed(printer, 5)
        assert qr_texts(printed[4].image) == [f"WKT1:{booked.ticket['id']}"]
        assert (await kiosk.service.wait_ticket(booked.ticket["id"], 5))["state"] == "printed"
        kinds = [row[1] for row in kiosk.jobs()]
        assert kinds == ["ticket", "reprint", "reprint", "dossier", "appointment"]
        assert [e.data["by"] for e in kiosk.events("ticket.print_requested")] == ["counter", "cli"]


async def test_stale_tickets_are_skipped_and_a_bad_logo_does_not_stop_printing(kiosk_factory: Any,
                                                                               tmp_path: Path) -> None:
    logo = tmp_path / "logo.png"
    logo.write_text("not an image")
    with tcp_printer() as printer:
        printer.emulator.state.cover_open = True
        kiosk = await kiosk_factory(printer.url, stale_after_seconds=10, logo=str(logo))
        assert kiosk.service.logo is None
        fault = (await kiosk.wait_event("printer.fault"))[0]
        assert fault.data["reason"] == "cover_open"
        status, ticket = await kiosk.call("POST", "/api/tickets", {"service": "khai-sinh"})
        assert status == 201
        # The service's clock moves 11 s on: the ticket is older than stale_after_seconds when the
        # cover is closed again (the log is append-only, so the event's time cannot be moved back).
        kiosk.service.clock = lambda: system_clock() + timedelta(seconds=11)
        printer.emulator.state.cover_open = False
        await kiosk.wait_event("printer.recovered")
        _status, state = await kiosk.call("GET", f"/api/printer/tickets/{ticket['id']}?wait=5")
        assert state["state"] == "skipped" and state["reason"] == "stale"
        assert printer.emulator.tickets == []


@pytest.mark.parametrize(("trouble", "reason"), [("silent", "no_response"), ("garbage", "garbage")])
async def test_a_printer_that_never_answers_or_answers_garbage(kiosk_factory: Any, trouble: str,
                                                                reason: str) -> None:
    with tcp_printer() as printer:
        setattr(printer.emulator.state, trouble, True)
        kiosk = await kiosk_factory(printer.url)
        assert (await kiosk.wait_event("printer.fault"))[0].data["reason"] == reason
        status, ticket = await kiosk.call("POST", "/api/tickets", {"service": "khai-sinh"})
        assert status == 201
        status, state = await kiosk.call("GET", f"/api/printer/tickets/{ticket['id']}?wait=5")
        assert state["state"] == "pending" and "Máy in đang không hoạt động." in state["message"]
        assert printer.emulator.tickets == []  # nothing is sent to a printer that cannot say it is ready
        setattr(printer.emulator.state, trouble, False)
        await kiosk.wait_event("printer.recovered")
        printed = await wait_printed(printer, 1)
        assert qr_texts(printed[0].image) == [f"WKT1:{ticket['id']}"]
        status, state = await kiosk.call("GET", f"/api/printer/tickets/{ticket['id']}?wait=5")
        assert state["state"] == "printed" and len(kiosk.jobs()) == 1
