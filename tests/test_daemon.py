"""`kiosk run` as a real process: camera → scanner → check-in → event log, and a clean SIGTERM."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from devices import imaging
from tests import checkin_samples as S
from tests.conftest import KIOSK


def test_daemon_checks_in_from_camera_and_stops_cleanly(kiosk_env: dict[str, str], tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    frame = np.full((720, 1280, 3), 220, np.uint8)
    imaging.draw_qr(frame, S.DOSSIER, (640, 360), 360)
    cv2.imwrite(str(frames / "1.png"), frame)
    env = {**kiosk_env, "KIOSK_CAMERA__SOURCE": f"images:{frames}?fps=5", "KIOSK_MQTT__ENABLED": "false",
           "KIOSK_WEB__PORT": "0"}
    daemon = subprocess.Popen([*KIOSK, "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    follower = subprocess.Popen([*KIOSK, "events", "--follow", "--json"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
    try:
        assert follower.stdout is not None
        seen: list[dict[str, object]] = []
        while not any(e["type"] == "checkin.accepted" for e in seen):
            line = follower.stdout.readline()  # each line is one committed event
            assert line, "event follower ended"
            seen.append(json.loads(line))
        types = [e["type"] for e in seen]
        assert types[0] == "agent.started" and "ticket.issued" in types
        daemon.send_signal(signal.SIGTERM)
        _out, err = daemon.communicate(timeout=20)
        assert daemon.returncode == 0, err
        assert "Traceback" not in err and S.DOSSIER not in err
    finally:
        follower.kill()
        follower.communicate()
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate()


def quiet_env(kiosk_env: dict[str, str], **extra: str) -> dict[str, str]:
    """A daemon with no camera, broker or speaker: only the store and the screens."""
    env = {k: v for k, v in kiosk_env.items() if k != "JOURNAL_STREAM"}
    env.update({"KIOSK_CAMERA__ENABLED": "false", "KIOSK_MQTT__ENABLED": "false", "KIOSK_VOICE__ENABLED": "false",
                "KIOSK_WEB__PORT": "0", **extra})
    return env


def start_line_and_stop(env: dict[str, str]) -> tuple[str, str]:
    """Run the daemon until it logs its start, stop it, return (the start line, all of stderr)."""
    daemon = subprocess.Popen([*KIOSK, "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = threading.Timer(60, daemon.kill)  # a daemon that never logs its start must not hang the run
    deadline.start()
    try:
        assert daemon.stderr is not None
        lines: list[str] = []
        while not lines or " started: ward " not in lines[-1]:
            line = daemon.stderr.readline()
            assert line, f"daemon ended before its start line: {''.join(lines)}"
            lines.append(line)
        daemon.send_signal(signal.SIGTERM)
        rest = daemon.stderr.read()
        assert daemon.wait(timeout=20) == 0
        return lines[-1].rstrip("\n"), "".join(lines) + rest
    finally:
        deadline.cancel()
        deadline.join()
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()


def test_run_logs_info_with_journal_priorities_under_systemd(kiosk_env: dict[str, str]) -> None:
    start, err = start_line_and_stop(quiet_env(kiosk_env, JOURNAL_STREAM="8:12345"))
    # sd-daemon prefix <6> (INFO), the logger, no timestamp: the journal stamps lines itself.
    assert re.fullmatch(r"<6>agent\.app: agent \S+ started: ward .*", start), start
    assert "<6>agent.app: agent stopped" in err
    assert all(re.match(r"<[0-7]>", line) for line in err.splitlines()), err


def test_run_logs_info_with_timestamps_outside_systemd(kiosk_env: dict[str, str]) -> None:
    start, err = start_line_and_stop(quiet_env(kiosk_env))
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO agent\.app: agent \S+ started: ward .*", start)
    assert "INFO agent.app: agent stopped" in err


@pytest.mark.parametrize("journal", [True, False])
def test_run_crash_logs_traceback_at_error(kiosk_env: dict[str, str], journal: bool) -> None:
    with socket.socket() as taken:  # the screens' port is busy: an unexpected OSError in `run`
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        extra = {"KIOSK_WEB__PORT": str(taken.getsockname()[1])}
        if journal:
            extra["JOURNAL_STREAM"] = "8:12345"
        proc = subprocess.run([*KIOSK, "run"], env=quiet_env(kiosk_env, **extra), capture_output=True, text=True,
                              timeout=60)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert lines[-1].startswith("kiosk: internal error: OSError")  # the one line stays last
    trace = lines[lines.index(next(x for x in lines if "unexpected error" in x)):-1]
    assert any("Traceback (most recent call last):" in x for x in trace)
    assert any("address already in use" in x for x in trace)
    if journal:  # every line of the traceback at priority 3 (err), so `journalctl -p err` shows all of it
        assert all(x.startswith("<3>") for x in trace), trace
    else:
        assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ERROR agent: unexpected error", trace[0])
