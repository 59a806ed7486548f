"""`make run`: the agent on the demo defaults, with a local broker and a central ingest beside it.

Starts `mosquitto` on 127.0.0.1:1883 when nothing listens there (a machine with the Debian service
already has one), a `kiosk central ingest` process storing into var/demo/central.db (so the demo
shows events acknowledged end to end), `kiosk central serve` on that database (port 8090, or
KIOSK_DEMO_CENTRAL_PORT) with a demo admin whose generated password is printed, then the agent with
`config/kiosk.demo.toml`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from agent.app import run_agent
from agent.settings import REPO_ROOT, Settings, load_settings

logger = logging.getLogger("agent.demo")

DEMO_CONFIG = REPO_ROOT / "config" / "kiosk.demo.toml"
BROKER_CONFIG = REPO_ROOT / "config" / "mosquitto" / "demo.conf"


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def ensure_broker(settings: Settings) -> subprocess.Popen[bytes] | None:
    """The demo broker on the ports the settings name (KIOSK_MQTT__URL may move it)."""
    port = urlsplit(settings.mqtt.url).port or 1883
    ws_port = urlsplit(settings.call.officer_broker_url or "").port or 18831
    if port_open("127.0.0.1", port):
        logger.info("using the broker already listening on 127.0.0.1:%d", port)
        return None
    conf = settings.data_dir() / "mosquitto.conf"
    text = BROKER_CONFIG.read_text(encoding="utf-8")
    conf.write_text(text.replace("listener 18830 ", f"listener {port} ").replace("listener 18831 ",
                                                                                 f"listener {ws_port} "),
                    encoding="utf-8")
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    logger.info("starting the demo broker on 127.0.0.1:%d (WebSockets %d)", port, ws_port)
    return subprocess.Popen([exe, "-c", str(conf)])


WARDS_CSV = Path(__file__).resolve().parent.parent / "config" / "wards.demo.csv"


def central_web(settings: Settings, central_db: str) -> tuple[subprocess.Popen[bytes], str, str]:
    """Central's web on the demo's central database, with user `admin` and a fresh password."""
    port = os.environ.get("KIOSK_DEMO_CENTRAL_PORT", "8090")
    password = secrets.token_urlsafe(12)
    secret = settings.data_dir() / "central-admin.password"
    secret.touch(mode=0o600)
    secret.write_text(password, encoding="utf-8")
    kiosk = [sys.executable, "-m", "agent.cli.main", "central"]
    added = subprocess.run([*kiosk, "user", "add", "admin", "--db", central_db, "--role", "admin",
                            "--password-file", str(secret)], capture_output=True, check=False)
    if added.returncode != 0:  # a previous demo's admin: give it this run's password
        subprocess.run([*kiosk, "user", "passwd", "admin", "--db", central_db, "--password-file", str(secret)],
                       capture_output=True, check=False)
    subprocess.run([*kiosk, "wards", "import", str(WARDS_CSV), "--db", central_db], capture_output=True, check=False)
    serve = subprocess.Popen([*kiosk, "serve", "--db", central_db, "--port", port, "--broker", settings.mqtt.url])
    return serve, f"http://127.0.0.1:{port}", password


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(DEMO_CONFIG)
    settings.data_dir().mkdir(parents=True, exist_ok=True)
    broker = ensure_broker(settings)
    central_db = settings.data_dir() / "central.db"
    ingest = subprocess.Popen([sys.executable, "-m", "agent.cli.main", "central", "ingest", "--broker",
                               settings.mqtt.url, "--db", str(central_db)])
    serve, central_url, password = central_web(settings, str(central_db))
    web = f"http://{settings.web.host}:{settings.web.port}"
    print(f"""
ward-kiosk demo ({settings.device.kiosk}, ward {settings.device.ward}); data in {settings.data_dir()}
  kiosk screen    {web}/            display board  {web}/board
  counter 1       {web}/counter/1   (PIN 1111; counters 2-6: 2222 … 6666)
  officer console {web}/officer     (broker {settings.call.officer_broker_url}, any user name)
  the demo camera shows a sample ID card, an appointment and a dossier receipt in turn
  paper tickets   {settings.printer.device if settings.printer.enabled else "off"} (each ticket as a PNG)
  central web     {central_url}/kpi  (user admin, password {password}); fleet {central_url}/ops
  public page     {central_url}/public/{settings.device.ward}
  try: .venv/bin/kiosk -c config/kiosk.demo.toml queue show   ·   kiosk fleet status --broker {settings.mqtt.url}
""", flush=True)
    try:
        asyncio.run(run_agent(settings))
    finally:
        for proc in (serve, ingest, broker):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()


if __name__ == "__main__":
    main()
