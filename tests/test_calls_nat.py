"""Issue #13 item 4: a call across NAT. The kiosk sits on a ward LAN behind NAT, the officer (aiortc, then
Debian Chromium) on the city network, mosquitto and coturn (config/coturn/turnserver.conf, TURN REST
shared secret only) on central; central drops forwarded UDP between ward and city, so the call connects
only through the relay. Real namespaces made here (root only; CI runs as root)."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import netns

pytestmark = pytest.mark.timeout(240)

WHY = netns.unavailable()
if WHY is not None:  # pragma: no cover - CI is root
    pytest.skip(f"calls across NAT: {WHY}", allow_module_level=True)


@pytest.fixture
def central(tmp_path: Path) -> Iterator[tuple[netns.Topology, Path]]:
    topo = netns.Topology()
    try:
        topo.up()
        secret = secrets.token_urlsafe(32)
        secret_file = tmp_path / "turn-secret"
        secret_file.write_text(secret + "\n", encoding="utf-8")
        secret_file.chmod(0o600)
        netns.start_central(topo, tmp_path / "central", secret)
        yield topo, secret_file
    finally:
        topo.close()  # namespaces and their processes go, even when the test failed


def test_the_shipped_coturn_config_has_no_static_password() -> None:
    conf = (netns.ROOT / "config" / "coturn" / "turnserver.conf").read_text(encoding="utf-8")
    active = [line.split("=")[0].strip() for line in conf.splitlines() if line.strip() and not line.startswith("#")]
    assert "use-auth-secret" in active
    assert not {"user", "static-auth-secret", "lt-cred-mech"} & set(active)


def test_the_direct_path_is_closed(central: tuple[netns.Topology, Path]) -> None:
    topo, _ = central
    # UDP from the ward to the city dies at central (counted), while TCP to central (the broker) goes.
    before = topo.blocked_udp_packets()
    topo.ns(topo.ward, "bash", "-c", f"echo x > /dev/udp/{netns.CITY_IP}/40000 || true")
    assert topo.blocked_udp_packets() == before + 1
    topo.ns(topo.ward, "bash", "-c", f"exec 3<>/dev/tcp/{netns.CENTRAL_WAN}/1883")


def allocation(topo: netns.Topology, secret_file: Path, expires_in: int) -> dict[str, object]:
    out = subprocess.run(["ip", "netns", "exec", topo.ward, sys.executable, "-m", "tests.nat_peers", "allocate",
                          "--secret-file", str(secret_file), "--expires-in", str(expires_in)],
                         cwd=netns.ROOT, capture_output=True, text=True, timeout=60)
    value = json.loads(out.stdout.strip().splitlines()[-1])
    assert isinstance(value, dict)
    return value


def test_coturn_takes_only_live_credentials_of_its_secret(central: tuple[netns.Topology, Path],
                                                          tmp_path: Path) -> None:
    topo, secret_file = central
    assert allocation(topo, secret_file, 300)["allocated"] is True
    expired = allocation(topo, secret_file, -60)  # the REST username's expiry has passed
    assert expired["allocated"] is False, expired
    other = tmp_path / "other-secret"
    other.write_text("not-the-secret\n", encoding="utf-8")
    wrong = allocation(topo, other, 300)
    assert wrong["allocated"] is False, wrong


def relayed(kiosk_line: dict[str, object]) -> bool:
    pair = kiosk_line["pair"]
    assert isinstance(pair, dict), kiosk_line
    return "relay" in (pair["local"], pair["remote"])


def test_aiortc_officer_reaches_the_kiosk_through_the_relay(central: tuple[netns.Topology, Path],
                                                            tmp_path: Path) -> None:
    topo, secret_file = central
    kiosk, officer = netns.run_calls(topo, tmp_path, secret_file, "aiortc", calls=1)
    assert kiosk[0]["state"] == "connected" and kiosk[0]["ended_by"] == "officer"
    assert relayed(kiosk[0]), kiosk[0]
    pair = kiosk[0]["pair"]
    assert isinstance(pair, dict) and pair["local"] == "relay"  # the kiosk's own allocation on central
    assert str(pair["local_addr"]).startswith(netns.CENTRAL_WAN + ":")
    assert officer[0]["call"] == kiosk[0]["call"] and float(str(officer[0]["setup_ms"])) > 0
    assert topo.blocked_udp_packets() > 0  # ICE did try the direct path, and central dropped it


def test_without_the_relay_the_call_does_not_connect(central: tuple[netns.Topology, Path],
                                                     tmp_path: Path) -> None:
    topo, _ = central
    # The same call with no TURN server: direct UDP is dropped at central, so the kiosk gives up.
    kiosk, _ = netns.run_calls(topo, tmp_path, None, "aiortc", calls=1, officer_reports=False)
    assert kiosk[0]["state"] == "ended" and kiosk[0]["pair"] is None, kiosk[0]
    assert kiosk[0]["ended_by"] == "kiosk"
    assert topo.blocked_udp_packets() > 0


@pytest.mark.browser
def test_chromium_officer_reaches_the_kiosk_through_the_relay(central: tuple[netns.Topology, Path],
                                                              tmp_path: Path) -> None:
    topo, secret_file = central
    kiosk, officer = netns.run_calls(topo, tmp_path, secret_file, "chromium", calls=1)
    # The console closes its peer as it publishes its hangup: the kiosk may notice either first.
    assert kiosk[0]["state"] == "connected" and kiosk[0]["ended_by"] in ("officer", "system")
    assert relayed(kiosk[0]), kiosk[0]
    assert officer[0]["call"] == kiosk[0]["call"] and float(str(officer[0]["setup_ms"])) > 0
