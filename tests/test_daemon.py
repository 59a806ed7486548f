"""`kiosk run` as a real process: camera → scanner → check-in → event log, and a clean SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import cv2
import numpy as np

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
