"""`kiosk qr decode|scan|token` through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from devices import imaging
from tests import checkin_samples as S
from tests.conftest import run_kiosk


def write_code(path: Path, payload: str) -> None:
    frame = np.full((720, 1280, 3), 230, np.uint8)
    imaging.draw_qr(frame, payload, (640, 360), 400)
    cv2.imwrite(str(path), frame)


def test_decode_masks_personal_data(kiosk_env: dict[str, str], tmp_path: Path) -> None:
    card, blank = tmp_path / "card.png", tmp_path / "blank.png"
    write_code(card, S.CARD)
    cv2.imwrite(str(blank), np.full((480, 640, 3), 128, np.uint8))
    out = run_kiosk(kiosk_env, "qr", "decode", str(card), str(blank), "--json", check=True).stdout
    docs = [json.loads(line) for line in out.splitlines()]
    assert docs[0]["codes"][0]["kind"] == "id_card" and docs[0]["codes"][0]["id"].endswith("2345")
    assert docs[0]["codes"][0]["name"] == "N. V. An"
    assert S.CARD_ID not in out and S.CARD_NAME not in out
    assert docs[1]["codes"] == []
    raw = run_kiosk(kiosk_env, "qr", "decode", str(card), "--raw", "--json", check=True).stdout
    assert json.loads(raw)["codes"][0]["id"] == S.CARD_ID
    human = run_kiosk(kiosk_env, "qr", "decode", str(card), check=True).stdout
    assert "kind=id_card" in human and S.CARD_ID not in human


def test_decode_unreadable_file(kiosk_env: dict[str, str], tmp_path: Path) -> None:
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    proc = run_kiosk(kiosk_env, "qr", "decode", str(junk))
    assert proc.returncode == 1 and "not an image" in proc.stderr and "Traceback" not in proc.stderr


def test_token_keygen_issue_and_decode(kiosk_env: dict[str, str], tmp_path: Path) -> None:
    key = tmp_path / "booking.pem"
    pub = json.loads(run_kiosk(kiosk_env, "qr", "token", "keygen", str(key), "--json", check=True).stdout)
    assert (key.stat().st_mode & 0o777) == 0o600 and len(pub["public_key"]) == 43
    assert run_kiosk(kiosk_env, "qr", "token", "keygen", str(key)).returncode == 1  # never overwrites
    tok = run_kiosk(kiosk_env, "qr", "token", "issue", "--key", str(key), "--booking", "BK-9", "--service",
                    "khai-sinh", "--date", "2026-11-30", "--slot", "09:00", "--key-id", "t1", check=True).stdout.strip()
    assert tok.startswith("WKA1.")
    img = tmp_path / "appt.png"
    write_code(img, tok)
    doc = json.loads(run_kiosk(kiosk_env, "qr", "decode", str(img), "--json", check=True).stdout)
    assert doc["codes"][0]["kind"] == "appointment"
    bad = run_kiosk(kiosk_env, "qr", "token", "issue", "--key", str(key), "--booking", "BK 9!", "--service",
                    "khai-sinh", "--date", "2026-11-30", "--slot", "9h")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr


def test_scan_demo_source_prints_decisions(kiosk_env: dict[str, str], tmp_path: Path) -> None:
    images = tmp_path / "frames"
    images.mkdir()
    write_code(images / "a.png", S.DOSSIER)
    proc = run_kiosk(kiosk_env, "qr", "scan", "--source", f"images:{images}?fps=5", "--seconds", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    decisions = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(d["kind"], d["code"]) for d in decisions] == [("dossier", "ticket_issued")]
