"""`make run`: the agent on the demo defaults, with a local broker and a central ingest beside it.

Starts `mosquitto` on 127.0.0.1:1883 when nothing listens there (a machine with the Debian service
already has one), a `kiosk central ingest` process storing into var/demo/central.db (so the demo
shows events acknowledged end to end), then the agent with `config/kiosk.demo.toml`.
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
    central_db = settings.data_dir() / "central.db"
    settings.data_dir().mkdir(parents=True, exist_ok=True)
    ingest = subprocess.Popen([sys.executable, "-m", "agent.cli.main", "central", "ingest", "--broker",
                               settings.mqtt.url, "--db", str(central_db)])
    web = f"http://{settings.web.host}:{settings.web.port}"
    print(f"""
ward-kiosk demo ({settings.device.kiosk}, ward {settings.device.ward}); data in {settings.data_dir()}
  kiosk screen    {web}/            display board  {web}/board
  counter 1       {web}/counter/1   (PIN 1111; counters 2-6: 2222 … 6666)
  officer console {web}/officer     (needs a broker with a WebSocket listener)
  the demo camera shows a sample ID card, an appointment and a dossier receipt in turn
  try: .venv/bin/kiosk -c config/kiosk.demo.toml queue show   ·   kiosk fleet status --broker {settings.mqtt.url}
""", flush=True)
    try:
        asyncio.run(run_agent(settings))
    finally:
        for proc in (ingest, broker):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()


if __name__ == "__main__":
    main()
