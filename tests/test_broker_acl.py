"""The production broker config and ACL (config/mosquitto/) with a test CA made at test time:
kiosk A cannot publish into or read kiosk B's topics, anonymous clients are refused."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.mqtt_client import ConnectRefused, Message, MqttClient, MqttOptions, NotConnected, PublishFailed
from tests.brokers import ROOT, Broker, free_port

pytestmark = pytest.mark.timeout(60)
CONF = ROOT / "config" / "mosquitto"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
    path.with_suffix(".pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))


def make_pki(folder: Path, clients: list[str]) -> None:
    """A CA, a broker certificate for 127.0.0.1 and one client certificate per CN."""
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("ward-kiosk test CA")).issuer_name(_name("ward-kiosk test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    _write(folder / "ca", ca_key, ca)

    def issue(cn: str, file: str, server: bool) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1)))
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        _write(folder / file, key, builder.sign(ca_key, hashes.SHA256()))

    issue("127.0.0.1", "broker", True)
    for cn in clients:
        issue(cn, cn.replace("/", "_"), False)


def production_config(pki: Path, acl: Path, passwd: Path, tls_port: int, pw_port: int) -> str:
    """config/mosquitto/production.conf with test paths and ports; the WebSocket listener becomes plain
    MQTT over TLS with passwords (this mosquitto build has no WebSocket support), same auth rules."""
    text = (CONF / "production.conf").read_text(encoding="utf-8")
    text = text.replace("/etc/mosquitto/certs/ca.pem", str(pki / "ca.pem"))
    text = text.replace("/etc/mosquitto/certs/broker.pem", str(pki / "broker.pem"))
    text = text.replace("/etc/mosquitto/certs/broker.key", str(pki / "broker.key"))
    text = text.replace("/etc/mosquitto/ward-kiosk.acl", str(acl))
    text = text.replace("/etc/mosquitto/ward-kiosk.passwd", str(passwd))
    text = re.sub(r"^persistence true$", "persistence false", text, flags=re.M)
    text = re.sub(r"^persistence_location .*$", "", text, flags=re.M)
    if os.geteuid() == 0:  # mosquitto would drop to user "mosquitto", who cannot read pytest's tmp dirs
        text = "user root\n" + text
    text = text.replace("listener 8883", f"listener {tls_port} 127.0.0.1")
    text = text.replace("listener 8884\nprotocol websockets", f"listener {pw_port} 127.0.0.1\nprotocol mqtt")
    return text


@dataclass
class Pki:
    folder: Path
    broker: Broker
    pw_port: int

    def options(self, cn: str, **kw: object) -> MqttOptions:
        f = cn.replace("/", "_")
        return MqttOptions(url=f"mqtts://127.0.0.1:{self.broker.port}", client_id=f"test-{f}",
                           ca_file=self.folder / "ca.pem", cert_file=self.folder / f"{f}.pem",
                           key_file=self.folder / f"{f}.key", reconnect_min=0.05, connect_timeout=5,
                           publish_timeout=5, **kw)  # type: ignore[arg-type]


def production_broker(tmp_path: Path, clients: list[str]) -> Pki:
    """mosquitto started with the production config and ACL, a fresh CA and these client certificates."""
    pki = tmp_path / "pki"
    make_pki(pki, clients)
    passwd = tmp_path / "passwd"
    passwd.write_text("", encoding="utf-8")
    tls_port, pw_port = free_port(), free_port()
    broker = Broker(tmp_path / "broker", port=tls_port, listener="",
                    config=production_config(pki, CONF / "ward-kiosk.acl", passwd, tls_port, pw_port))
    broker.start()
    return Pki(pki, broker, pw_port)


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[Pki]:
    pki = production_broker(tmp_path, ["26734/kiosk-a", "26734/kiosk-b", "ingest", "fleet"])
    yield pki
    pki.broker.stop()


RUNNING: list[asyncio.Task[None]] = []


async def connected(options: MqttOptions, stop: asyncio.Event) -> MqttClient:
    client = MqttClient(options)
    RUNNING.append(asyncio.create_task(client.run(stop)))
    assert await asyncio.wait_for(client.wait_connected(stop), 10), client.last_error
    return client


async def test_kiosk_is_confined_to_its_own_topics(secured: Pki) -> None:
    stop = asyncio.Event()
    seen: asyncio.Queue[Message] = asyncio.Queue()
    ingest = MqttClient(secured.options("ingest"))
    ingest.subscribe("$share/ingest/wards/+/+/events", seen.put_nowait)
    RUNNING.append(asyncio.create_task(ingest.run(stop)))
    a_got: list[Message] = []
    a = MqttClient(secured.options("26734/kiosk-a"))
    a.subscribe("wards/26734/kiosk-b/cmd/#", a_got.append)  # not its own: never delivered
    a.subscribe("wards/26734/kiosk-b/ack", a_got.append)
    a.subscribe("wards/26734/kiosk-a/cmd/#", a_got.append)
    RUNNING.append(asyncio.create_task(a.run(stop)))
    fleet = await connected(secured.options("fleet"), stop)
    assert await ingest.wait_connected(stop) and await a.wait_connected(stop)
    await asyncio.sleep(0.2)  # SUBACKs in flight; the ACL decisions are what we observe below

    await a.publish("wards/26734/kiosk-a/events", json.dumps({"seq": 1}))  # its own: accepted
    own = await asyncio.wait_for(seen.get(), 5)
    assert own.topic == "wards/26734/kiosk-a/events"
    for topic in ("wards/26734/kiosk-b/events", "wards/26734/kiosk-b/status", "wards/26734/kiosk-a/ack",
                  "wards/26734/kiosk-a/cmd/ping", "wards/99999/x/events"):
        with pytest.raises(PublishFailed, match="refused"):  # MQTT 5 PUBACK: Not authorized
            await a.publish(topic, b"{}")
    await fleet.publish("wards/26734/kiosk-b/cmd/ping", b'{"id": 1}')
    await fleet.publish("wards/26734/kiosk-a/cmd/ping", b'{"id": 2}')
    await a.publish("wards/26734/kiosk-a/events", json.dumps({"seq": 2}))
    assert json.loads((await asyncio.wait_for(seen.get(), 5)).payload) == {"seq": 2}
    assert seen.empty()  # nothing forged into kiosk B's stream arrived
    assert [m.topic for m in a_got] == ["wards/26734/kiosk-a/cmd/ping"]  # B's command never reached A
    stop.set()
    await asyncio.gather(*RUNNING)
    RUNNING.clear()


async def test_anonymous_and_certless_clients_are_refused(secured: Pki) -> None:
    stop = asyncio.Event()
    # TLS listener without a client certificate: the handshake fails.
    certless = MqttOptions(url=f"mqtts://127.0.0.1:{secured.broker.port}", client_id="anon",
                           ca_file=secured.folder / "ca.pem", connect_timeout=5)
    client = MqttClient(certless)
    with pytest.raises((OSError, NotConnected, ConnectRefused, TimeoutError)):
        await client._connect()
    # Password listener (officers) without credentials: CONNACK "not authorized".
    anon = MqttOptions(url=f"mqtts://127.0.0.1:{secured.pw_port}", client_id="anon2",
                       ca_file=secured.folder / "ca.pem", connect_timeout=5)
    with pytest.raises((ConnectRefused, NotConnected)):
        await MqttClient(anon)._connect()
    stop.set()
