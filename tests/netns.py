"""A ward LAN behind NAT, a city network and a central machine, as Linux network namespaces (needs root).

    ward (10.77.1.2) ── gw: NAT (masquerade) 10.77.0.2 ── central 10.77.0.1 | 10.77.2.1 ── city (10.77.2.2)

Central routes between the ward's NAT and the city but drops every forwarded UDP packet between them, so
WebRTC media can only flow through the TURN relay running on central. Everything stays inside these
namespaces: no interface of the host's own namespace is touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

WARD_IP, GW_LAN, GW_WAN, CENTRAL_WAN, CENTRAL_CITY, CITY_IP = (
    "10.77.1.2", "10.77.1.1", "10.77.0.2", "10.77.0.1", "10.77.2.1", "10.77.2.2")


def unavailable() -> str | None:
    """Why these namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add); CI runs as root"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"needs {tool} (Debian iproute2 / nftables)"
    probe = f"wkprobe{os.getpid() % 100000}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, timeout=10)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.decode().strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=10)
    return None


def _run(*argv: str, stdin: str | None = None) -> None:
    done = subprocess.run(argv, input=stdin.encode() if stdin else None, capture_output=True, timeout=20)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.decode().strip()}")


class Topology:
    """Four namespaces; ``close`` removes them (and kills what runs in them) even after a failed setup."""

    def __init__(self) -> None:
        tag = f"{os.getpid() % 100000:x}{time.monotonic_ns() % 4096:x}"[-6:]
        self.tag = tag
        self.ward, self.gw, self.central, self.city = (f"wk{tag}{n}" for n in ("w", "g", "c", "o"))
        self.procs: list[subprocess.Popen[bytes]] = []

    def ns(self, name: str, *argv: str) -> None:
        _run("ip", "netns", "exec", name, *argv)

    def up(self) -> Topology:
        t = self.tag
        for name in (self.ward, self.gw, self.central, self.city):
            _run("ip", "netns", "add", name)
            self.ns(name, "ip", "link", "set", "lo", "up")
        links = ((f"wa{t}", self.ward, WARD_IP, f"wb{t}", self.gw, GW_LAN),
                 (f"ga{t}", self.gw, GW_WAN, f"gb{t}", self.central, CENTRAL_WAN),
                 (f"cb{t}", self.city, CITY_IP, f"ca{t}", self.central, CENTRAL_CITY))
        for a, ns_a, ip_a, b, ns_b, ip_b in links:
            _run("ip", "link", "add", a, "type", "veth", "peer", "name", b)
            for dev, ns, ip in ((a, ns_a, ip_a), (b, ns_b, ip_b)):
                _run("ip", "link", "set", dev, "netns", ns)
                self.ns(ns, "ip", "addr", "add", f"{ip}/24", "dev", dev)
                self.ns(ns, "ip", "link", "set", dev, "up")
        self.ns(self.ward, "ip", "route", "add", "default", "via", GW_LAN)
        self.ns(self.gw, "ip", "route", "add", "default", "via", CENTRAL_WAN)
        self.ns(self.city, "ip", "route", "add", "default", "via", CENTRAL_CITY)
        for router in (self.gw, self.central):
            self.ns(router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        # The ward's router: the LAN leaves masqueraded, nothing unsolicited comes in.
        _run("ip", "netns", "exec", self.gw, "nft", "-f", "-", stdin=(
            "table ip nat { chain post { type nat hook postrouting priority 100; "
            f'oifname "ga{t}" masquerade\n}}\n}}\n'
            "table inet filter { chain lan_out { type filter hook forward priority 0; policy drop; "
            f'ct state established,related accept; iifname "wb{t}" accept\n}}\n}}\n'))
        # Central: no direct UDP between the ward's NAT and the city (media must use the relay).
        _run("ip", "netns", "exec", self.central, "nft", "-f", "-", stdin=(
            "table inet filter { chain relay_only { type filter hook forward priority 0; policy accept; "
            "ip saddr 10.77.0.0/24 ip daddr 10.77.2.0/24 meta l4proto udp counter drop; "
            "ip saddr 10.77.2.0/24 ip daddr 10.77.0.0/24 meta l4proto udp counter drop\n}\n}\n"))
        return self

    def open_direct_path(self, is_open: bool) -> None:
        """Let forwarded UDP between the ward's NAT and the city through (a baseline), or drop it again."""
        verdict = "accept" if is_open else "drop"
        argv = ["ip", "netns", "exec", self.central, "nft", "-a", "list", "chain", "inet", "filter", "relay_only"]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True).stdout
        for line in out.splitlines():
            if "l4proto udp" in line and "# handle " in line:
                rule, handle = line.split("# handle ")
                rule = rule.strip().rsplit(" ", 1)[0] + f" {verdict}"  # same match and counter, new verdict
                rule = rule.split(" counter ")[0] + " counter " + verdict
                self.ns(self.central, "nft", "replace", "rule", "inet", "filter", "relay_only", "handle",
                        handle.strip(), rule)

    def blocked_udp_packets(self) -> int:
        """Forwarded UDP packets central dropped between the ward's NAT and the city (both directions)."""
        argv = ["ip", "netns", "exec", self.central, "nft", "list", "chain", "inet", "filter", "relay_only"]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True).stdout
        return sum(int(part.split()[0]) for part in out.split("counter packets ")[1:])

    def popen(self, name: str, argv: list[str], *, log: Path | None = None,
              stdout: int | None = None) -> subprocess.Popen[bytes]:
        sink = log.open("ab") if log is not None else subprocess.DEVNULL
        proc = subprocess.Popen(["ip", "netns", "exec", name, *argv], stdout=stdout or sink, stderr=sink,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(proc)
        return proc

    def wait_listening(self, name: str, port: int, *, udp: bool = False, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = subprocess.run(["ip", "netns", "exec", name, "ss", "-Hln" + ("u" if udp else "t"),
                                  f"sport = :{port}"], capture_output=True, text=True, timeout=10).stdout
            if out.strip():
                return
            time.sleep(0.05)
        raise TimeoutError(f"nothing listens on {port} in {name}")

    def close(self) -> None:
        for proc in self.procs:
            # Each child leads its own session (ip netns exec execs the program itself): the group also
            # holds what it started (Playwright's driver and Chromium).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        for name in (self.ward, self.gw, self.central, self.city):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


def start_central(topo: Topology, workdir: Path, secret: str) -> None:
    """mosquitto (TCP 1883, WebSockets 9001) and coturn with the shipped config on central."""
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "mosquitto.conf"
    conf.write_text("listener 1883\nlistener 9001\nprotocol websockets\nallow_anonymous true\npersistence false\n",
                    encoding="utf-8")
    topo.popen(topo.central, ["mosquitto", "-c", str(conf)], log=workdir / "mosquitto.log")
    # The secret goes into coturn's user database as ops do it (turnadmin), never into the config file.
    db = workdir / "turndb"
    _run("turnadmin", "--set-secret", secret, "--realm", "ward-kiosk", "--db", str(db))
    shipped = Path(__file__).resolve().parent.parent / "config" / "coturn" / "turnserver.conf"
    topo.popen(topo.central, ["turnserver", "-c", str(shipped), "--userdb", str(db), "--pidfile",
                              str(workdir / "turn.pid"), "--listening-ip", CENTRAL_WAN, "--listening-ip",
                              CENTRAL_CITY, "--relay-ip", CENTRAL_WAN, "--log-file", "stdout"],
               log=workdir / "turnserver.log")
    topo.wait_listening(topo.central, 1883)
    topo.wait_listening(topo.central, 9001)
    topo.wait_listening(topo.central, 3478, udp=True)


ROOT = Path(__file__).resolve().parent.parent


class Lines:
    """JSON lines from a child's stdout, read with a deadline."""

    def __init__(self, proc: subprocess.Popen[bytes], what: str) -> None:
        assert proc.stdout is not None
        self.proc, self.what, self.stdout = proc, what, proc.stdout
        os.set_blocking(self.stdout.fileno(), False)
        self._buf = b""

    def next(self, timeout: float) -> dict[str, object]:
        import json
        import select

        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.what}: no line in {timeout:g} s")
            ready, _, _ = select.select([self.stdout], [], [], min(left, 0.5))
            if ready:
                chunk = self.stdout.read()
                if not chunk:
                    raise RuntimeError(f"{self.what} exited ({self.proc.wait(timeout=10)}) before its line")
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        value = json.loads(line)
        assert isinstance(value, dict)
        return value


def run_calls(topo: Topology, workdir: Path, secret_file: Path | None, officer: str, calls: int,
              timeout: float = 40.0, hold: float = 0.5, officer_reports: bool = True,
              ) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """``calls`` calls from the kiosk (ward) to an ``officer`` ("aiortc" or "chromium", city), one after the
    other; returns (the kiosk's lines, the officer's lines), one per call."""
    import sys

    base = [sys.executable, "-m", "tests.nat_peers"]
    common = ["--calls", str(calls), "--timeout", str(timeout)]
    cwd = os.getcwd()
    os.chdir(ROOT)  # ``-m tests.nat_peers`` imports this checkout
    try:
        off = Lines(topo.popen(topo.city, [*base, officer, *common, "--hold", str(hold)],
                               log=workdir / f"officer-{officer}.log", stdout=subprocess.PIPE), f"{officer} officer")
        off.next(timeout + 30)  # ready: subscribed to the ward's rings before the kiosk rings
        turn = [] if secret_file is None else ["--secret-file", str(secret_file)]
        kio = Lines(topo.popen(topo.ward, [*base, "kiosk", *common, *turn],
                               log=workdir / "kiosk.log", stdout=subprocess.PIPE), "kiosk")
        kio.next(timeout)
    finally:
        os.chdir(cwd)
    officer_lines, kiosk_lines = [], []
    if not officer_reports:  # calls expected to fail: only the kiosk says how they ended
        kiosk_lines = [kio.next(timeout) for _ in range(calls)]
        return kiosk_lines, officer_lines
    for _ in range(calls):
        officer_lines.append(off.next(timeout * 2))
        kiosk_lines.append(kio.next(timeout))
    for proc in (off.proc, kio.proc):
        proc.wait(timeout=timeout)
    return kiosk_lines, officer_lines
