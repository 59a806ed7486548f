"""`make run`: the agent on the demo defaults, with a local broker if none is running.

Starts `mosquitto` on 127.0.0.1:1883 when nothing listens there (a machine with the Debian
service already has one), then runs `kiosk run --config config/kiosk.demo.toml`.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
import sys

from agent.app import run_agent
from agent.settings import REPO_ROOT, load_settings

logger = logging.getLogger("agent.demo")

DEMO_CONFIG = REPO_ROOT / "config" / "kiosk.demo.toml"
BROKER_CONFIG = REPO_ROOT / "config" / "mosquitto" / "demo.conf"


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def ensure_broker() -> subprocess.Popen[bytes] | None:
    if port_open("127.0.0.1", 1883):
        logger.info("using the broker already listening on 127.0.0.1:1883")
        return None
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    logger.info("starting a demo broker on 127.0.0.1:1883")
    return subprocess.Popen([exe, "-c", str(BROKER_CONFIG)])


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    broker = ensure_broker()
    settings = load_settings(DEMO_CONFIG)
    print(f"ward-kiosk demo: kiosk screen http://{settings.web.host}:{settings.web.port}/ "
          f"· board /board · counter /counter/1 · data in {settings.data_dir()}", flush=True)
    try:
        asyncio.run(run_agent(settings))
    finally:
        if broker is not None:
            broker.terminate()
            broker.wait(timeout=10)


if __name__ == "__main__":
    main()
