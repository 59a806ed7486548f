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


def fake_wheel(tmp: Path, version: str, behaviour: str = "good", name: str = "ward-kiosk",
               requires: str = "") -> Path:
    """A real (tiny) wheel written by hand: the build machine's wheel tooling is not what is under test."""
    out = tmp / f"wheel-{name}-{version}-{behaviour}"
    out.mkdir(parents=True)
    under = name.replace("-", "_")
    dist = f"{under}-{version}.dist-info"
    module = "fakekiosk" if name == "ward-kiosk" else under
    files = {
        f"{module}/__init__.py": FAKE_MAIN.format(behaviour=behaviour, version=version),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                            + (f"Requires-Dist: {requires}\n" if requires else ""),
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    if name == "ward-kiosk":
        files[f"{dist}/entry_points.txt"] = "[console_scripts]\nkiosk = fakekiosk:main\n"
    record = []
    for member, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{member},sha256={digest},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = "\n".join(record) + "\n"
    path = out / f"{under}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in files.items():
            archive.writestr(member, text)
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
