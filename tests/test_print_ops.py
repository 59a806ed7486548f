"""The printer in `kiosk config check`, `kiosk doctor`, and the fleet's alerts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from agent.central.fleet import KioskView, Thresholds
from agent.ops.doctor import check_printer
from agent.settings import load_settings
from tests.conftest import run_kiosk
from tests.printer_emulator import tcp_printer


def test_config_check_reports_a_bad_logo_and_a_bad_device(kiosk_env: dict[str, str], tmp_path: Path) -> None:
    # The issue's own example: a network printer from the environment alone.
    env = {**kiosk_env, "KIOSK_PRINTER__ENABLED": "true", "KIOSK_PRINTER__DEVICE": "tcp://127.0.0.1:9100"}
    ok = run_kiosk(env, "config", "check", "--json")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    logo = tmp_path / "logo.png"
    logo.write_text("<html>not a picture</html>")
    bad = run_kiosk({**env, "KIOSK_PRINTER__LOGO": str(logo)}, "config", "check")
    assert bad.returncode == 1 and "printer.logo:" in bad.stdout + bad.stderr
    assert "not an image" in bad.stdout + bad.stderr
    device = run_kiosk({**env, "KIOSK_PRINTER__DEVICE": "lpt:1"}, "config", "check")
    assert device.returncode == 1 and "printer.device" in device.stdout + device.stderr
    width = run_kiosk({**env, "KIOSK_PRINTER__PAPER_WIDTH_MM": "72"}, "config", "check")
    assert width.returncode == 1 and "printer.paper_width_mm" in width.stdout + width.stderr


def test_doctor_printer_check_reads_the_real_time_status(kiosk_env: dict[str, str], tmp_path: Path) -> None:
    with tcp_printer() as printer:
        settings = load_settings(storage={"data_dir": str(tmp_path / "data")},
                                 printer={"enabled": True, "device": printer.url, "status_timeout_seconds": 0.3})
        assert check_printer(settings).status == "ok"
        printer.emulator.state.near_end = True
        near = check_printer(settings)
        assert near.status == "warn" and near.data == {"paper_near_end": True}
        printer.emulator.state.paper_end = True
        out = check_printer(settings)
        assert out.status == "fail" and "paper_end" in out.detail and "hết giấy" in out.detail
        printer.emulator.state.silent = True
        silent = check_printer(settings)
        assert silent.status == "fail" and silent.data == {"reason": "no_response"}
        # The CLI: `kiosk doctor` has a printer line and fails on it.
        env = {**kiosk_env, "KIOSK_PRINTER__ENABLED": "true", "KIOSK_PRINTER__DEVICE": printer.url,
               "KIOSK_MQTT__ENABLED": "false"}
        skips = [a for name in ("clock", "camera", "broker", "certificate", "outbox") for a in ("--skip", name)]
        printer.emulator.state.silent = False
        proc = run_kiosk(env, "doctor", "--no-audio", "--json", *skips)
        checks = {c["check"]: c for c in json.loads(proc.stdout)["checks"]}
        assert proc.returncode == 1 and checks["printer"]["status"] == "fail", proc.stdout
        assert checks["printer"]["reason"] == "paper_end"
    assert check_printer(load_settings()).detail.startswith("printing is off")


def test_fleet_alerts_on_a_printer_fault_and_low_paper() -> None:
    now = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
    base = {"at": "2026-11-30T02:00:00.000Z"}
    status = {"state": "online"}
    fault = KioskView("26740", "k1", status, {**base, "printer": {"state": "fault", "fault": "paper_end"}})
    low = KioskView("26740", "k2", status, {**base, "printer": {"state": "ok", "paper_near_end": True}})
    fine = KioskView("26740", "k3", status, {**base, "printer": {"state": "ok", "paper_near_end": False}})
    assert fault.alerts(now, Thresholds()) == ["printer_paper_end"]
    assert low.alerts(now, Thresholds()) == ["printer_paper_low"]
    assert fine.alerts(now, Thresholds()) == []


def test_ticket_print_refuses_when_printing_is_off(kiosk_env: dict[str, str]) -> None:
    taken = run_kiosk(kiosk_env, "ticket", "take", "khai-sinh", "--json")
    number = json.loads(taken.stdout)["number"]
    off = run_kiosk(kiosk_env, "ticket", "print", number)
    assert off.returncode == 1 and "printing is off" in off.stderr and off.stderr.count("\n") == 1
    # Printing on but no agent running: the request is recorded and the command says it was not printed.
    on = run_kiosk({**kiosk_env, "KIOSK_PRINTER__ENABLED": "true"}, "ticket", "print", number, "--wait", "0.5")
    assert on.returncode == 1 and "not printed within 0.5 s" in on.stderr
    queued = run_kiosk({**kiosk_env, "KIOSK_PRINTER__ENABLED": "true"}, "ticket", "print", number, "--wait", "0",
                       "--json")
    assert queued.returncode == 0 and json.loads(queued.stdout)["state"] == "requested"
