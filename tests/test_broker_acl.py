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
from dataclasses import dataclass, replace
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


def make_pki(folder: Path, clients: list[str], ca_name: str = "ward-kiosk test CA", broker: bool = True) -> None:
    """A CA, a broker certificate for 127.0.0.1 and one client certificate per CN."""
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name(ca_name)).issuer_name(_name(ca_name))
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

    if broker:
        issue("127.0.0.1", "broker", True)
    for cn in clients:
        issue(cn, cn.replace("/", "_"), False)


def production_config(pki: Path, acl: Path, passwd: Path, tls_port: int, pw_port: int, services_port: int) -> str:
    """config/mosquitto/production.conf with test paths and ports; the WebSocket listener becomes plain
    MQTT over TLS with passwords (this mosquitto build has no WebSocket support), same auth rules."""
    text = (CONF / "production.conf").read_text(encoding="utf-8")
    text = text.replace("/etc/mosquitto/certs/ca.pem", str(pki / "ca.pem"))
    text = text.replace("/etc/mosquitto/certs/services-ca.pem", str(pki / "services" / "ca.pem"))
    text = text.replace("/etc/mosquitto/certs/broker.pem", str(pki / "broker.pem"))
    text = text.replace("/etc/mosquitto/certs/broker.key", str(pki / "broker.key"))
    text = text.replace("/etc/mosquitto/ward-kiosk.acl", str(acl))
    text = text.replace("/etc/mosquitto/ward-kiosk.passwd", str(passwd))
    text = re.sub(r"^persistence true$", "persistence false", text, flags=re.M)
    text = re.sub(r"^persistence_location .*$", "", text, flags=re.M)
    if os.geteuid() == 0:  # mosquitto would drop to user "mosquitto", who cannot read pytest's tmp dirs
        text = "user root\n" + text
    text = text.replace("listener 8883", f"listener {tls_port} 127.0.0.1")
    text = text.replace("listener 8885", f"listener {services_port} 127.0.0.1")
    text = text.replace("listener 8884\nprotocol websockets", f"listener {pw_port} 127.0.0.1\nprotocol mqtt")
    return text


@dataclass
class Pki:
    folder: Path
    broker: Broker
    pw_port: int
    services_port: int

    def options(self, cn: str, service: bool = False, **kw: object) -> MqttOptions:
        """A client with the certificate of `cn` (from the services CA, on the services listener, if `service`)."""
        f = cn.replace("/", "_")
        certs = self.folder / "services" if service else self.folder
        port = self.services_port if service else self.broker.port
        options: dict[str, object] = {"client_id": f"test-{f}", "reconnect_min": 0.05, "connect_timeout": 5,
                                      "publish_timeout": 5, **kw}
        return MqttOptions(url=f"mqtts://127.0.0.1:{port}", ca_file=self.folder / "ca.pem",
                           cert_file=certs / f"{f}.pem", key_file=certs / f"{f}.key", **options)  # type: ignore[arg-type]


def production_broker(tmp_path: Path, clients: list[str], services: tuple[str, ...] = ("ingest", "fleet"),
                      passwords: str = "") -> Pki:
    """mosquitto started with the production config and ACL, fresh kiosk and services CAs and these client
    certificates (`passwords`: lines of a mosquitto password file for the officer listener)."""
    pki = tmp_path / "pki"
    make_pki(pki, clients)
    make_pki(pki / "services", list(services), ca_name="ward-kiosk test services CA", broker=False)
    passwd = tmp_path / "passwd"
    passwd.write_text(passwords, encoding="utf-8")
    tls_port, pw_port, services_port = free_port(), free_port(), free_port()
    broker = Broker(tmp_path / "broker", port=tls_port, listener="",
                    config=production_config(pki, CONF / "ward-kiosk.acl", passwd, tls_port, pw_port, services_port))
    broker.start()
    return Pki(pki, broker, pw_port, services_port)


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[Pki]:
    pki = production_broker(tmp_path, ["26734/kiosk-a", "26734/kiosk-b"],
                            passwords=officer_password_line("officer-26734", "s3cret-officer"))
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
    ingest = MqttClient(secured.options("ingest", service=True))
    ingest.subscribe("$share/ingest/wards/+/+/events", seen.put_nowait)
    RUNNING.append(asyncio.create_task(ingest.run(stop)))
    a_got: list[Message] = []
    a = MqttClient(secured.options("26734/kiosk-a"))
    a.subscribe("wards/26734/kiosk-b/cmd/#", a_got.append)  # not its own: never delivered
    a.subscribe("wards/26734/kiosk-b/ack", a_got.append)
    a.subscribe("wards/26734/kiosk-a/cmd/#", a_got.append)
    RUNNING.append(asyncio.create_task(a.run(stop)))
    fleet = await connected(secured.options("fleet", service=True), stop)
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


def officer_password_line(user: str, password: str) -> str:
    """A mosquitto password-file line made by mosquitto_passwd itself."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "passwd"
        subprocess.run(["mosquitto_passwd", "-b", "-c", str(path), user, password], check=True, capture_output=True)
        return path.read_text(encoding="utf-8")


async def test_no_identity_can_take_over_another_kiosks_session(secured: Pki) -> None:
    """Before: another kiosk's certificate, or the officer password, with kiosk B's client id knocked B off
    the broker again and again. The client id is now the identity on the kiosk and officer listeners."""
    stop = asyncio.Event()
    b = await connected(secured.options("26734/kiosk-b"), stop)
    generation = b.generation
    officer = MqttOptions(url=f"mqtts://127.0.0.1:{secured.pw_port}", ca_file=secured.folder / "ca.pem",
                          username="officer-26734", password="s3cret-officer", client_id="x", connect_timeout=5)
    for attempt in range(17):
        for client_id in ("test-26734_kiosk-b", "26734/kiosk-b"):  # what B sent, and its identity
            if attempt % 2:
                attacker = MqttClient(replace(officer, client_id=client_id))
            else:
                attacker = MqttClient(secured.options("26734/kiosk-a", client_id=client_id))
            link = await attacker._connect()  # CONNACK accepted: the broker took the session over, or not
            attacker._drop(link, "attacker done")
    # B is still on its first connection: a takeover would have dropped it (and it would reconnect).
    await b.publish("wards/26734/kiosk-b/events", b'{"seq": 1}')
    assert b.generation == generation and b.connects == 1
    # A kiosk certificate is not accepted on the services listener; a service may share its identity.
    with pytest.raises((OSError, NotConnected, ConnectRefused, TimeoutError)):
        await MqttClient(replace(secured.options("26734/kiosk-a"),
                                 url=f"mqtts://127.0.0.1:{secured.services_port}"))._connect()
    first = await connected(secured.options("ingest", service=True, client_id="ingest-1"), stop)
    second = await connected(secured.options("ingest", service=True, client_id="ingest-2"), stop)
    await first.publish("wards/26734/kiosk-b/ack", b'{"seq": 0}', qos=1)
    assert first.connects == 1 and second.connects == 1
    stop.set()
    await asyncio.gather(*RUNNING)
    RUNNING.clear()
