"""Tiny fake `ward-kiosk` releases for the update tests: real wheels, real bundles, a `kiosk` entry that
talks sd_notify and misbehaves as its version was built to (crash / no READY / stop the watchdog)."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# This checkout's CLI (the venv's `kiosk` script may point at another worktree).
_BOOT = "import sys; sys.path.insert(0, sys.argv.pop(1)); from agent.cli.main import main; main()"
KIOSK = [sys.executable, "-c", _BOOT, str(REPO)]

FAKE_MAIN = '''
import os, socket, sys, time
BEHAVIOUR = {behaviour!r}
VERSION = {version!r}

def notify(msg):
    path = os.environ.get("NOTIFY_SOCKET")
    if path:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.sendto(msg.encode(), path)
        s.close()

def main():
    if sys.argv[1:2] == ["version"]:
        print(VERSION); return
    if BEHAVIOUR == "crash":
        raise SystemExit(3)
    if BEHAVIOUR != "noready":
        notify("READY=1")
    period = int(os.environ.get("WATCHDOG_USEC", "1000000")) / 4e6
    deadline = time.monotonic() + 120  # bounded: the supervisor stops us long before
    beats = 0
    while time.monotonic() < deadline:
        if BEHAVIOUR != "nowatchdog" or beats < 2:
            notify("WATCHDOG=1")
        beats += 1
        time.sleep(period)
'''


def fake_wheel(tmp: Path, version: str, behaviour: str = "good") -> Path:
    """A real (tiny) wheel written by hand: the build machine's wheel tooling is not what is under test."""
    out = tmp / f"wheel-{version}-{behaviour}"
    out.mkdir(parents=True)
    dist = f"ward_kiosk-{version}.dist-info"
    files = {
        "fakekiosk/__init__.py": FAKE_MAIN.format(behaviour=behaviour, version=version),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: ward-kiosk\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{dist}/entry_points.txt": "[console_scripts]\nkiosk = fakekiosk:main\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = "\n".join(record) + "\n"
    path = out / f"ward_kiosk-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return path


def kiosk(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KIOSK, *args], capture_output=True, text=True, timeout=timeout,
                          env=env if env is not None else dict(os.environ), check=False)


def build(key: Path, out: Path, wheel: Path, *extra: str) -> Path:
    done = kiosk("release", "build", "--key", str(key), "--out", str(out), "--wheel", str(wheel), "--no-deps",
                 "--json", *extra)
    assert done.returncode == 0, done.stderr
    import json
    return Path(json.loads(done.stdout)["bundle"])
