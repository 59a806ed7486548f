"""Enrolling a kiosk: its config file, its secrets and TLS identity, with safe permissions.

Re-provisioning keeps the local database and event log. Changing the ward or kiosk id of a device
that still holds events central has not acknowledged is refused unless forced: those events would
otherwise be published under an identity that did not produce them, or never acknowledged at all.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import pwd
import re
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.checkin import privacy
from agent.errors import ConfigError, InvalidInput, Refused
from agent.ops.wards import WardInfo, lookup_ward
from agent.queue.catalogue import load_catalogue
from agent.settings import DEFAULT_CATALOGUE, SettingsProblems, load_settings

KIOSK_ID = re.compile(r"^[a-z0-9-]{1,32}$")
CREDENTIALS = ("mqtt-password", "kiosk.key", "counter-pins")


def mqtt_identity(ward: str, kiosk: str) -> str:
    """The broker user name (and client certificate CN) of a kiosk: `{ward}/{kiosk}`.

    The broker ACL's `pattern write wards/%u/#` then confines the kiosk to its own topics.
    """
    return f"{ward}/{kiosk}"


SERVICE_USER = "ward-kiosk"
SERVICE_STATE_DIR = Path("/var/lib/ward-kiosk")  # the unit's StateDirectory=


@dataclass(frozen=True)
class Owner:
    uid: int
    gid: int


def service_owner(user: str | None) -> Owner | None:
    """The service user's ids when provisioning as root and the user exists (else files stay ours)."""
    if user is None or os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    return Owner(entry.pw_uid, entry.pw_gid)


def data_dir_for(req: ProvisionRequest, owner: Owner | None) -> Path:
    """Written into kiosk.toml explicitly, so the CLI and the service (whose $STATE_DIRECTORY would
    otherwise win) open the same database."""
    if req.data_dir is not None:
        return req.data_dir.resolve()
    return SERVICE_STATE_DIR if owner is not None else (req.config_dir / "var").resolve()


def _share_with_service(req: ProvisionRequest, owner: Owner, data_dir: Path) -> None:
    """root:<service group>: the config folder 0750, kiosk.toml and services.toml 0640 (systemd does not
    re-own ConfigurationDirectory). credentials/ stays root 0700: systemd reads it for LoadCredential=.
    The data folder belongs to the user, as StateDirectory= would make it."""
    os.chown(req.config_dir, 0, owner.gid)
    os.chmod(req.config_dir, 0o750)
    for name in ("kiosk.toml", "services.toml", "kiosk.pem", "ca.pem", "kiosk.csr"):
        path = req.config_dir / name
        if path.exists():
            os.chown(path, 0, owner.gid)
            if name.endswith(".toml"):
                os.chmod(path, 0o640)
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chown(data_dir, owner.uid, owner.gid)
    os.chmod(data_dir, 0o750)
    for child in data_dir.iterdir():
        os.chown(child, owner.uid, owner.gid)


@dataclass
class ProvisionRequest:
    config_dir: Path
    ward: str
    kiosk: str
    broker: str
    name: str | None = None
    data_dir: Path | None = None
    catalogue: Path | None = None
    tls: str = "none"  # none | generate | install
    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = None
    mqtt_password: str | None = None
    counter_pins: dict[int, str] = field(default_factory=dict)
    force: bool = False
    service_user: str | None = SERVICE_USER  # the unit's User=: it must read the config it runs with


@dataclass
class ProvisionResult:
    config_file: Path
    ward: WardInfo
    kiosk: str
    identity: str
    csr: Path | None
    kept_events: int
    notes: list[str]


def unacknowledged_events(db_path: Path) -> int:
    """Events in the local log that central has not acknowledged yet (0 when there is no database)."""
    if not db_path.exists():
        return 0
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        last = conn.execute("SELECT seq FROM sqlite_sequence WHERE name='events'").fetchone()
        if last is None:
            return 0
        try:
            acked = conn.execute("SELECT acked_seq FROM sync_state WHERE id=1").fetchone()
        except sqlite3.OperationalError:  # a database from before sync existed: nothing acknowledged
            acked = None
        return max(0, int(last[0]) - (int(acked[0]) if acked else 0))
    finally:
        conn.close()


def _write(path: Path, data: bytes, mode: int) -> None:
    """Atomic replace with the final mode from the start (a secret is never briefly world-readable)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _render(req: ProvisionRequest, ward: WardInfo, identity: str, catalogue: str, tls: bool) -> str:
    lines = [
        "# Written by `kiosk provision`; every setting is documented in config/kiosk.example.toml.",
        f"# Ward: {ward.label()}",
        "",
        "[device]",
        f"ward = {_toml_str(ward.code)}",
        f"kiosk = {_toml_str(req.kiosk)}",
        f"name = {_toml_str(req.name or f'Ki-ốt {req.kiosk} – {ward.name}')}",
        "",
    ]
    if req.data_dir is not None:  # always set by `provision`: one database for the CLI and the service
        lines += ["[storage]", f"data_dir = {_toml_str(str(req.data_dir))}", ""]
    lines += ["[queue]", f"catalogue = {_toml_str(catalogue)}", "", "[mqtt]", f"url = {_toml_str(req.broker)}",
              f"username = {_toml_str(identity)}"]
    if req.mqtt_password:
        lines.append('password_file = "mqtt-password"')
    if tls:
        lines += ['ca_file = "ca.pem"', 'cert_file = "kiosk.pem"', 'key_file = "kiosk.key"']
    lines += ["", "[web]", 'counter_pins_file = "counter-pins"', ""]
    return "\n".join(lines)


def _generate_key_and_csr(cred_dir: Path, config_dir: Path, identity: str, ward: WardInfo) -> Path:
    key_path = cred_dir / "kiosk.key"
    key: ec.EllipticCurvePrivateKey | None = None
    if key_path.exists() and key_path.stat().st_size:
        loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if isinstance(loaded, ec.EllipticCurvePrivateKey):
            key = loaded  # re-provisioning keeps the device key: its certificate stays valid
    if key is None:
        key = ec.generate_private_key(ec.SECP256R1())
        _write(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()), 0o600)
    subject = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, identity),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ward.name),
        x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
    ])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    csr_path = config_dir / "kiosk.csr"
    _write(csr_path, csr.public_bytes(serialization.Encoding.PEM), 0o644)
    return csr_path


def _install_cert(req: ProvisionRequest, cred_dir: Path, identity: str) -> list[str]:
    if req.cert is None or req.key is None or req.ca is None:
        raise InvalidInput("--tls install needs --cert, --key and --ca")
    try:
        cert = x509.load_pem_x509_certificate(req.cert.read_bytes())
        key = serialization.load_pem_private_key(req.key.read_bytes(), password=None)
        x509.load_pem_x509_certificates(req.ca.read_bytes())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read the TLS files: {exc}") from exc
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(serialization.Encoding.PEM, spki) != \
            key.public_key().public_bytes(serialization.Encoding.PEM, spki):
        raise InvalidInput("the certificate does not belong to the given key")
    if cert.not_valid_after_utc < dt.datetime.now(dt.UTC):
        raise InvalidInput(f"the certificate expired on {cert.not_valid_after_utc:%Y-%m-%d}")
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    notes = []
    if not cn or cn[0].value != identity:
        notes.append(f"the certificate's CN is not {identity!r}: the broker ACL will not match this kiosk")
    _write(cred_dir / "kiosk.key", req.key.read_bytes(), 0o600)
    _write(req.config_dir / "kiosk.pem", req.cert.read_bytes(), 0o644)
    _write(req.config_dir / "ca.pem", req.ca.read_bytes(), 0o644)
    return notes


def provision(req: ProvisionRequest) -> ProvisionResult:
    ward = lookup_ward(req.ward)
    if not KIOSK_ID.match(req.kiosk):
        raise InvalidInput(f"kiosk id {req.kiosk!r} must be 1-32 of a-z, 0-9 and '-'", code="bad_kiosk_id")
    if not req.broker.startswith(("mqtt://", "mqtts://")):
        raise InvalidInput(f"broker URL {req.broker!r} must start with mqtt:// or mqtts://", code="bad_broker")
    if req.tls not in ("none", "generate", "install"):
        raise InvalidInput("--tls is one of none, generate, install")
    if req.tls != "none" and not req.broker.startswith("mqtts://"):
        raise InvalidInput("TLS material is given but the broker URL is not mqtts://")
    notes: list[str] = []
    config_file = req.config_dir / "kiosk.toml"
    kept = 0
    if config_file.exists():
        try:
            old = load_settings(config_file)
        except (SettingsProblems, ConfigError):
            notes.append("the existing config was invalid; replaced")
        else:
            kept = unacknowledged_events(old.db_path())
            changed = (old.device.ward, old.device.kiosk) != (ward.code, req.kiosk)
            if changed and kept and not req.force:
                raise Refused(
                    f"this device ({old.device.ward}/{old.device.kiosk}) still has {kept} events central has not "
                    f"acknowledged; changing its identity to {ward.code}/{req.kiosk} would publish them under the "
                    "wrong kiosk or strand them. Let it sync first (kiosk fleet status), or pass --force.",
                    code="unacknowledged_events")
            if changed and kept:
                notes.append(f"forced: {kept} unacknowledged events will be published as {ward.code}/{req.kiosk}")
    catalogue_src = req.catalogue or DEFAULT_CATALOGUE
    load_catalogue(catalogue_src)  # refuse a broken catalogue before writing anything
    req.config_dir.mkdir(parents=True, exist_ok=True)
    cred_dir = req.config_dir / "credentials"
    cred_dir.mkdir(mode=0o700, exist_ok=True)
    os.chmod(cred_dir, 0o700)
    catalogue_dst = req.config_dir / "services.toml"
    if catalogue_src.resolve() != catalogue_dst.resolve():
        shutil.copyfile(catalogue_src, catalogue_dst)
    identity = mqtt_identity(ward.code, req.kiosk)
    csr = None
    if req.tls == "generate":
        csr = _generate_key_and_csr(cred_dir, req.config_dir, identity, ward)
        notes.append(f"send {csr} to the city CA; put the signed certificate at {req.config_dir / 'kiosk.pem'} "
                     f"and the CA at {req.config_dir / 'ca.pem'}")
    elif req.tls == "install":
        notes += _install_cert(req, cred_dir, identity)
    if req.mqtt_password is not None or not (cred_dir / "mqtt-password").exists():
        _write(cred_dir / "mqtt-password", (req.mqtt_password or "").encode(), 0o600)
    if req.counter_pins or not (cred_dir / "counter-pins").exists():
        body = "".join(f"{n} = {pin}\n" for n, pin in sorted(req.counter_pins.items()))
        _write(cred_dir / "counter-pins", body.encode(), 0o600)
    privacy.load_or_create_key(cred_dir / "privacy.key")  # ID-card hashing key: 0600, fsynced, weak one refused
    if not (cred_dir / "kiosk.key").exists():
        _write(cred_dir / "kiosk.key", b"", 0o600)  # the unit's LoadCredential= needs the file to exist
    owner = service_owner(req.service_user)
    data_dir = data_dir_for(req, owner)
    if owner is None and req.service_user is not None and os.geteuid() == 0:
        notes.append(f"service user {req.service_user} not found: the config stays root-only; run "
                     "systemd/install.sh first, then provision again")
    text = _render(dataclasses.replace(req, data_dir=data_dir), ward, identity, "services.toml",
                   tls=req.tls != "none")
    staged = req.config_dir / ".kiosk.toml.new"
    _write(staged, text.encode(), 0o640)
    try:
        load_settings(staged)  # what we wrote must load, or nothing is replaced
    except SettingsProblems:
        staged.unlink()
        raise
    os.replace(staged, config_file)
    if owner is not None:
        _share_with_service(req, owner, data_dir)
    return ProvisionResult(config_file, ward, req.kiosk, identity, csr, kept, notes)
