"""Provisioning, `kiosk doctor` against healthy and broken setups, systemd units and sd_notify."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.ops.systemd import Liveness, Notifier, watchdog_loop
from agent.store import events
from agent.store.db import Database
from tests.brokers import Broker
from tests.conftest import KIOSK, ROOT, run_kiosk
from tests.disks import fill


def provision(env: dict[str, str], cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_kiosk(env, "provision", "--config-dir", str(cfg), "--yes", "--json", *args)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("KIOSK_", "CREDENTIALS_DIRECTORY", "STATE_DIR"))}
    e["PYTHONPATH"] = str(ROOT)
    return e


# Provisioning -------------------------------------------------------------------------------------
def test_provision_writes_config_and_secrets(env: dict[str, str], tmp_path: Path) -> None:
    cfg = tmp_path / "etc"
    env["BROKER_PW"] = "s3cret-pw"
    proc = provision(env, cfg, "--ward", "26740", "--kiosk", "sg-01", "--broker", "mqtt://127.0.0.1:1883",
                     "--mqtt-password-env", "BROKER_PW", "--counter-pin", "1=1234", "--counter-pin", "2=9876")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ward_name"] == "Phường Sài Gòn, Thành phố Hồ Chí Minh" and doc["identity"] == "26740/sg-01"
    assert (cfg / "kiosk.toml").stat().st_mode & 0o777 == 0o640
    for name in ("mqtt-password", "counter-pins", "kiosk.key"):
        assert (cfg / "credentials" / name).stat().st_mode & 0o777 == 0o600
    assert (cfg / "credentials").stat().st_mode & 0o777 == 0o700
    assert "s3cret-pw" not in (cfg / "kiosk.toml").read_text(encoding="utf-8")
    shown = json.loads(run_kiosk(env, "-c", str(cfg / "kiosk.toml"), "config", "show", "--json", check=True).stdout)
    assert shown["device"]["ward"] == "26740" and shown["mqtt"]["username"] == "26740/sg-01"
    # The written config is usable as is: secrets resolve beside it outside systemd.
    from agent.settings import load_settings

    s = load_settings(cfg / "kiosk.toml")
    assert s.mqtt_password() == "s3cret-pw" and s.counter_pins() == {1: "1234", 2: "9876"}


@pytest.mark.parametrize(("ward", "needle"), [("26734", "not in the official list"), ("123", "not in the official"),
                                              ("ab123", "5-digit"), ("999999", "5-digit")])
def test_provision_rejects_invalid_ward(env: dict[str, str], tmp_path: Path, ward: str, needle: str) -> None:
    proc = provision(env, tmp_path / "etc", "--ward", ward, "--kiosk", "k1", "--broker", "mqtt://127.0.0.1:1")
    assert proc.returncode == 1 and needle in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "etc" / "kiosk.toml").exists()


def test_provision_non_interactive_needs_identity(env: dict[str, str], tmp_path: Path) -> None:
    proc = provision(env, tmp_path / "etc", "--ward", "26740")
    assert proc.returncode == 1 and "--kiosk" in proc.stderr and "--broker" in proc.stderr


def test_wards_lookup(env: dict[str, str]) -> None:
    found = json.loads(run_kiosk(env, "wards", "Tân Định", "--json", check=True).stdout)
    assert {"code": "26737", "name": "Phường Tân Định", "province": "Thành phố Hồ Chí Minh"} in found


def _with_events(cfg: Path, n: int) -> Path:
    from agent.settings import load_settings

    settings = load_settings(cfg / "kiosk.toml")
    with Database(settings.db_path()) as db, db.write() as conn:
        for i in range(n):
            events.append(conn, "config.applied", {"i": i}, dt.datetime.now(dt.UTC))
    return settings.db_path()


def test_reprovision_keeps_data_and_guards_identity(env: dict[str, str], tmp_path: Path) -> None:
    cfg = tmp_path / "etc"
    base = ("--broker", "mqtt://127.0.0.1:1883", "--data-dir", str(tmp_path / "state"))
    assert provision(env, cfg, "--ward", "26740", "--kiosk", "sg-01", *base).returncode == 0
    db_path = _with_events(cfg, 5)
    # Same identity, new broker: allowed, the database is untouched.
    same = provision(env, cfg, "--ward", "26740", "--kiosk", "sg-01", "--broker", "mqtt://10.0.0.9:1883",
                     "--data-dir", str(tmp_path / "state"))
    assert same.returncode == 0, same.stderr
    # New identity with 5 unacknowledged events: refused, nothing changed.
    before = (cfg / "kiosk.toml").read_bytes()
    refused = provision(env, cfg, "--ward", "26740", "--kiosk", "sg-02", *base)
    assert refused.returncode == 1 and "5 events" in refused.stderr and "--force" in refused.stderr
    assert (cfg / "kiosk.toml").read_bytes() == before
    forced = provision(env, cfg, "--ward", "26740", "--kiosk", "sg-02", *base, "--force")
    assert forced.returncode == 0 and json.loads(forced.stdout)["unacknowledged_events"] == 5
    with Database(db_path) as db:
        assert events.last_seq(db.conn) == 5  # the event log survived every re-provisioning
    # Once central acknowledged everything, a change needs no force.
    with Database(db_path) as db, db.write() as conn:
        conn.execute("UPDATE sync_state SET acked_seq = 5 WHERE id = 1")
    assert provision(env, cfg, "--ward", "26737", "--kiosk", "td-01", *base).returncode == 0


def test_provision_tls_generate_and_install(env: dict[str, str], tmp_path: Path) -> None:
    cfg = tmp_path / "etc"
    proc = provision(env, cfg, "--ward", "26740", "--kiosk", "sg-01", "--broker", "mqtts://127.0.0.1:8883",
                     "--tls", "generate")
    assert proc.returncode == 0, proc.stderr
    csr = x509.load_pem_x509_csr((cfg / "kiosk.csr").read_bytes())
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "26740/sg-01"
    key_before = (cfg / "credentials" / "kiosk.key").read_bytes()
    assert provision(env, cfg, "--ward", "26740", "--kiosk", "sg-01", "--broker", "mqtts://127.0.0.1:8883",
                     "--tls", "generate").returncode == 0
    assert (cfg / "credentials" / "kiosk.key").read_bytes() == key_before  # the device key is kept
    # install: a certificate for another key is refused
    other = ec.generate_private_key(ec.SECP256R1())
    cert = _self_signed(other, "26740/sg-01", days=30)
    (tmp_path / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    bad = provision(env, cfg, "--ward", "26740", "--kiosk", "sg-01", "--broker", "mqtts://127.0.0.1:8883",
                    "--tls", "install", "--cert", str(tmp_path / "c.pem"),
                    "--key", str(cfg / "credentials" / "kiosk.key"), "--ca", str(tmp_path / "ca.pem"))
    assert bad.returncode == 1 and "does not belong" in bad.stderr


def _self_signed(key: ec.EllipticCurvePrivateKey, cn: str, days: int) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now + dt.timedelta(days=min(days, 0) - 1))
            .not_valid_after(now + dt.timedelta(days=days)).sign(key, hashes.SHA256()))


# Doctor -------------------------------------------------------------------------------------------
@pytest.fixture
def kiosk_cfg(env: dict[str, str], tmp_path: Path, mosquitto: Broker) -> Path:
    cfg = tmp_path / "etc"
    proc = provision(env, cfg, "--ward", "26740", "--kiosk", "sg-01", "--broker", mosquitto.url,
                     "--data-dir", str(tmp_path / "state"))
    assert proc.returncode == 0, proc.stderr
    return cfg / "kiosk.toml"


def doctor(env: dict[str, str], cfg: Path, *args: str) -> tuple[int, dict[str, dict[str, object]]]:
    proc = run_kiosk(env, "-c", str(cfg), "doctor", "--no-audio", "--skip", "clock", "--json", *args)
    doc = json.loads(proc.stdout)
    return proc.returncode, {c["check"]: c for c in doc["checks"]}


def test_doctor_healthy(env: dict[str, str], kiosk_cfg: Path) -> None:
    code, checks = doctor(env, kiosk_cfg)
    assert code == 0, checks
    assert checks["broker_roundtrip"]["status"] == "ok" and checks["camera"]["status"] == "ok"
    assert checks["data_dir"]["status"] == "ok" and checks["clock"]["detail"] == "skipped"
    human = run_kiosk(env, "-c", str(kiosk_cfg), "doctor", "--no-audio", "--skip", "clock").stdout
    assert "✓ broker_roundtrip" in human


def test_doctor_no_broker(env: dict[str, str], kiosk_cfg: Path, mosquitto: Broker) -> None:
    mosquitto.kill()
    code, checks = doctor(env, kiosk_cfg)
    assert code == 1 and checks["broker_tcp"]["status"] == "fail"
    assert checks["camera"]["status"] == "ok"  # every other check still ran


def test_doctor_unreadable_camera(env: dict[str, str], kiosk_cfg: Path, tmp_path: Path) -> None:
    env = {**env, "KIOSK_CAMERA__SOURCE": f"file:{tmp_path / 'missing.mp4'}"}
    code, checks = doctor(env, kiosk_cfg)
    assert code == 1 and checks["camera"]["status"] == "fail"


def test_doctor_expired_certificate(env: dict[str, str], kiosk_cfg: Path, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _self_signed(key, "26740/sg-01", days=-1)
    (tmp_path / "old.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    code, checks = doctor({**env, "KIOSK_MQTT__CERT_FILE": str(tmp_path / "old.pem")}, kiosk_cfg,
                          "--skip", "broker")
    assert code == 1 and checks["certificate"]["status"] == "fail" and "expired" in str(checks["certificate"])


def test_doctor_full_disk(env: dict[str, str], kiosk_cfg: Path, tiny_disk: Path) -> None:
    fill(tiny_disk)
    code, checks = doctor({**env, "KIOSK_STORAGE__DATA_DIR": str(tiny_disk)}, kiosk_cfg)
    assert code == 1 and checks["data_dir"]["status"] == "fail"


def test_full_disk_write_is_a_clear_error_and_loses_nothing(env: dict[str, str], tiny_disk: Path) -> None:
    env = {**env, "KIOSK_STORAGE__DATA_DIR": str(tiny_disk), "KIOSK_QUEUE__ENFORCE_HOURS": "false"}
    numbers = [json.loads(run_kiosk(env, "ticket", "take", "tra-ket-qua", "--json", check=True).stdout)["number"]
               for _ in range(3)]
    fill(tiny_disk)  # the disk is now full to the last block
    failed = [run_kiosk(env, "ticket", "take", "tra-ket-qua", "--json") for _ in range(2)]
    for proc in failed:
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert "disk is full" in proc.stderr, proc.stderr
    (tiny_disk / "filler").unlink()
    with Database(tiny_disk / "kiosk.db") as db:
        assert db.integrity_check() == "ok"
        stored = [r[0] for r in db.conn.execute("SELECT number FROM tickets ORDER BY arrival")]
        seqs = [r[0] for r in db.conn.execute("SELECT seq FROM events ORDER BY seq")]
    assert stored == numbers and seqs == [1, 2, 3]  # nothing lost, nothing half-written
    after = json.loads(run_kiosk(env, "ticket", "take", "tra-ket-qua", "--json", check=True).stdout)
    assert after["number"] == "K004"  # and the kiosk carries on once space is back


# systemd ------------------------------------------------------------------------------------------
@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_units_verify(tmp_path: Path) -> None:
    for unit in ("kiosk-agent.service", "kiosk-screen.service"):
        text = (ROOT / "systemd" / f"{unit}.in").read_text(encoding="utf-8").replace("@PREFIX@", str(ROOT))
        (tmp_path / unit).write_text(text, encoding="utf-8")
    proc = subprocess.run(["systemd-analyze", "verify", *(str(tmp_path / u) for u in
                                                          ("kiosk-agent.service", "kiosk-screen.service"))],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    agent = (tmp_path / "kiosk-agent.service").read_text(encoding="utf-8")
    for line in ("Type=notify", "WatchdogSec=", "ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes",
                 "StateDirectory=ward-kiosk", "LoadCredential=", "SupplementaryGroups=video audio"):
        assert line in agent
    # The screen opens the URL the agent is configured with (written at its start), not a fixed one.
    screen = (tmp_path / "kiosk-screen.service").read_text(encoding="utf-8")
    assert "127.0.0.1:8080" not in screen and "${KIOSK_SCREEN_URL}" in screen
    assert "EnvironmentFile=/run/ward-kiosk/screen.env" in screen and "RuntimeDirectory=ward-kiosk\n" in agent


def test_units_security_exposure(tmp_path: Path) -> None:
    """`systemd-analyze security --offline=true` of the rendered units: agent ≤ 2.0, screen ≤ 4.0."""
    scores = {}
    for unit in ("kiosk-agent.service", "kiosk-screen.service"):
        text = (ROOT / "systemd" / f"{unit}.in").read_text(encoding="utf-8").replace("@PREFIX@", str(ROOT))
        (tmp_path / unit).write_text(text, encoding="utf-8")
        proc = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(tmp_path / unit)],
                              capture_output=True, text=True, cwd=tmp_path, timeout=60)
        found = re.search(r"Overall exposure level for \S+: (\d+\.\d)", proc.stdout)
        assert found, proc.stdout + proc.stderr
        scores[unit] = float(found[1])
    assert scores["kiosk-agent.service"] <= 2.0 and scores["kiosk-screen.service"] <= 4.0, scores
    agent = (tmp_path / "kiosk-agent.service").read_text(encoding="utf-8")
    for bound in ("LimitNOFILE=", "MemoryMax=", "TasksMax="):
        assert re.search(rf"^{bound}\S+", agent, re.M), bound


def _notify_socket(tmp_path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(20)
    return sock


def test_daemon_ready_then_watchdog(env: dict[str, str], tmp_path: Path) -> None:
    sock = _notify_socket(tmp_path)
    env = {**env, "NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "600000",
           "KIOSK_STORAGE__DATA_DIR": str(tmp_path / "state"), "KIOSK_MQTT__ENABLED": "false",
           "KIOSK_WEB__PORT": "0", "KIOSK_CAMERA__SOURCE": "demo:", "RUNTIME_DIRECTORY": str(tmp_path / "run")}
    (tmp_path / "run").mkdir()
    daemon = subprocess.Popen([*KIOSK, "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        messages: list[str] = []
        while messages.count("WATCHDOG=1") < 3:
            messages += sock.recv(4096).decode().splitlines()
        assert "READY=1" in messages
        # Before READY the agent told the screen unit where its screens are (the configured, bound port).
        screen_env = (tmp_path / "run" / "screen.env").read_text(encoding="utf-8")
        url = screen_env.strip().removeprefix("KIOSK_SCREEN_URL=")
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", url) and not url.endswith(":0/"), screen_env
        with urllib.request.urlopen(url, timeout=10) as reply:
            assert reply.status == 200
        assert oct((tmp_path / "run" / "screen.env").stat().st_mode & 0o777) == "0o644"
        assert messages.index("READY=1") < len(messages) - 1
        daemon.send_signal(signal.SIGTERM)
        while "STOPPING=1" not in messages:
            messages += sock.recv(4096).decode().splitlines()
        assert daemon.wait(timeout=20) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
        daemon.communicate()
        sock.close()


async def test_stalled_loop_stops_watchdog_pings(tmp_path: Path) -> None:
    sock = _notify_socket(tmp_path)
    sock.setblocking(False)
    notifier = Notifier(str(tmp_path / "notify.sock"))
    now = [0.0]
    live = Liveness(clock=lambda: now[0])
    live.register("sweep", 10)
    stop = asyncio.Event()
    task = asyncio.create_task(watchdog_loop(notifier, live, 0.01, stop))
    loop = asyncio.get_running_loop()

    async def recv() -> str:
        return (await loop.sock_recv(sock, 4096)).decode()

    assert await asyncio.wait_for(recv(), 5) == "WATCHDOG=1"
    now[0] = 11.0  # "sweep" has not beaten for 11 s: withhold the ping, say why
    while (msg := await asyncio.wait_for(recv(), 5)) == "WATCHDOG=1":
        pass
    assert msg.startswith("STATUS=stalled: sweep")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(recv(), 0.2)  # no ping while stalled
    live.beat("sweep")
    assert await asyncio.wait_for(recv(), 5) == "WATCHDOG=1"
    stop.set()
    await task
    notifier.close()
    sock.close()




# Doctor against the production broker config: TLS, client certificates, the ACL -----------------
@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[Broker, Path]]:
    from tests.test_broker_acl import production_broker

    pki = production_broker(tmp_path, ["26740/sg-01"])
    try:
        yield pki.broker, pki.folder
    finally:
        pki.broker.stop()


def _provision_tls(env: dict[str, str], tmp_path: Path, broker: Broker, pki: Path, cert_dir: Path) -> Path:
    cfg = tmp_path / "etc"
    proc = provision(env, cfg, "--ward", "26740", "--kiosk", "sg-01", "--broker", f"mqtts://127.0.0.1:{broker.port}",
                     "--data-dir", str(tmp_path / "state"), "--tls", "install",
                     "--cert", str(cert_dir / "26740_sg-01.pem"), "--key", str(cert_dir / "26740_sg-01.key"),
                     "--ca", str(pki / "ca.pem"))
    assert proc.returncode == 0, proc.stderr
    return cfg / "kiosk.toml"


def test_doctor_tls_acl_round_trip(env: dict[str, str], tmp_path: Path, tls_broker: tuple[Broker, Path]) -> None:
    broker, pki = tls_broker
    cfg = _provision_tls(env, tmp_path, broker, pki, pki)
    code, checks = doctor(env, cfg, "--skip", "camera")
    assert code == 0, checks
    assert checks["broker_tls"]["status"] == "ok" and checks["broker_roundtrip"]["status"] == "ok"
    # the test certificate lives one day: valid, but the doctor warns about the coming expiry
    assert checks["certificate"]["status"] == "warn" and "expires in 0 days" in str(checks["certificate"])


def test_doctor_certificate_from_another_ca(env: dict[str, str], tmp_path: Path,
                                            tls_broker: tuple[Broker, Path]) -> None:
    from tests.test_broker_acl import make_pki

    broker, pki = tls_broker
    rogue = tmp_path / "rogue"
    make_pki(rogue, ["26740/sg-01"])  # same CN, signed by a CA the broker does not trust
    cfg = _provision_tls(env, tmp_path, broker, pki, rogue)
    code, checks = doctor(env, cfg, "--skip", "camera")
    assert code == 1
    failed = [name for name, c in checks.items() if c["status"] == "fail"]
    assert failed and failed[0].startswith("broker_"), checks


@pytest.fixture
def service_user() -> Iterator[str]:
    """A throwaway system user standing in for `ward-kiosk` (the tests run as root)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create a system user")
    name = f"wkt{os.getpid() % 100000}"
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], check=False)


def test_provision_as_root_lets_the_service_user_read_its_config(env: dict[str, str], service_user: str) -> None:
    import grp
    import pwd
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="kiosk-prov-", dir="/tmp"))  # not pytest's 0700 tmp: the user must reach it
    try:
        base.chmod(0o755)
        cfg, data = base / "etc", base / "state"
        proc = provision(env, cfg, "--ward", "26740", "--kiosk", "sg-01", "--broker", "mqtt://127.0.0.1:1883",
                         "--user", service_user, "--data-dir", str(data), "--counter-pin", "1=1234")
        assert proc.returncode == 0, proc.stderr
        group = grp.getgrgid(pwd.getpwnam(service_user).pw_gid).gr_name
        for path, mode in ((cfg, 0o750), (cfg / "kiosk.toml", 0o640), (cfg / "services.toml", 0o640)):
            st = path.stat()
            assert (st.st_uid, grp.getgrgid(st.st_gid).gr_name, st.st_mode & 0o777) == (0, group, mode), path
        creds = cfg / "credentials"  # read by systemd (LoadCredential=) as root, never by the user directly
        assert (creds.stat().st_uid, creds.stat().st_mode & 0o777) == (0, 0o700)
        assert data.stat().st_uid == pwd.getpwnam(service_user).pw_uid
        as_user = subprocess.run(["runuser", "-u", service_user, "--", "cat", str(cfg / "kiosk.toml")],
                                 capture_output=True, text=True)
        assert as_user.returncode == 0 and 'ward = "26740"' in as_user.stdout, as_user.stderr
        # The CLI run by root writes the database, and the service user can still open it for writing.
        run_kiosk({**env, "KIOSK_QUEUE__ENFORCE_HOURS": "false"}, "-c", str(cfg / "kiosk.toml"), "ticket", "take",
                  "khai-sinh", check=True)
        owners = {p.name: p.stat().st_uid for p in data.iterdir()}
        assert set(owners.values()) == {pwd.getpwnam(service_user).pw_uid}, owners
        # (The project's interpreter lives under /root here, so the user writes with the system sqlite3.)
        db = data / "kiosk.db"
        wrote = subprocess.run(["runuser", "-u", service_user, "--", "sqlite3", str(db),
                                "INSERT INTO meta(key, value) VALUES('written_by', 'service user');"],
                               capture_output=True, text=True, timeout=60)
        assert wrote.returncode == 0, wrote.stderr
        with Database(db) as check:
            assert check.meta_get("written_by") == "service user"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_cli_and_service_resolve_the_same_database(env: dict[str, str], tmp_path: Path) -> None:
    cfg = tmp_path / "etc"
    assert provision(env, cfg, "--ward", "26740", "--kiosk", "sg-01", "--broker", "mqtt://127.0.0.1:1883",
                     "--user", "no-such-user-here").returncode == 0
    shown = [json.loads(run_kiosk(e, "-c", str(cfg / "kiosk.toml"), "config", "show", "--json", check=True).stdout)
             for e in (env, {**env, "STATE_DIRECTORY": str(tmp_path / "systemd-state")})]
    # The data folder is written into kiosk.toml: systemd's $STATE_DIRECTORY no longer makes the service
    # use another file than `kiosk doctor` or the counter commands.
    assert shown[0]["_resolved"]["db"] == shown[1]["_resolved"]["db"] == str(cfg / "var" / "kiosk.db")
    assert "data_dir =" in (cfg / "kiosk.toml").read_text(encoding="utf-8")
