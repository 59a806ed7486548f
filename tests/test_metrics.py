"""`GET /metrics` of the real daemon (`kiosk run`, demo camera, a real mosquitto): the text exposition
format 0.0.4 parsed strictly, Prometheus naming, ward/kiosk labels, and values that move with the
camera, the decoder, the check-ins, the outbox and the broker; the telemetry message says the same."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from agent.mqtt_client import MqttClient, MqttOptions
from agent.web.metrics import WebMetrics
from devices.decoders import DurationHistogram
from tests.brokers import Broker, free_port, wait_port
from tests.conftest import KIOSK, run_kiosk

LABELS = {"ward": "26740", "kiosk": "demo-01"}
_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^({_NAME})(?:\{{(.*)\}})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')


@dataclass
class Family:
    name: str
    type: str = "untyped"
    help: str = ""
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)


def parse(text: str) -> dict[str, Family]:
    """A strict reader of the 0.0.4 text format: HELP/TYPE once and before samples, every sample in its family."""
    assert text.endswith("\n")
    families: dict[str, Family] = {}
    current: Family | None = None
    for line in text.splitlines():
        if line.startswith("# "):
            _, kind, name, rest = [*line.split(" ", 3), ""][:4]
            assert kind in ("HELP", "TYPE"), line
            fam = families.setdefault(name, Family(name))
            if kind == "TYPE":
                assert not fam.samples and fam.type == "untyped", f"TYPE after samples or twice: {line}"
                assert rest in ("counter", "gauge", "histogram", "summary", "untyped"), line
                fam.type = rest
            else:
                assert rest, f"empty HELP: {line}"
                fam.help = rest
            current = fam
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, raw_labels, raw_value = match.groups()
        labels: dict[str, str] = {}
        if raw_labels:
            consumed = "".join(m.group(0) for m in _LABEL.finditer(raw_labels))
            assert consumed == raw_labels, f"bad labels: {line!r}"
            labels = {m.group(1): m.group(2) for m in _LABEL.finditer(raw_labels)}
        base = name
        if current is not None and current.type == "histogram":
            base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert current is not None and base == current.name, f"sample outside its family: {line!r}"
        current.samples.append((name, labels, float(raw_value)))
    return families


def value(families: dict[str, Family], name: str, **labels: str) -> float:
    fam = families[re.sub(r"_(bucket|sum|count)$", "", name) if name not in families else name]
    hits = [v for n, lab, v in fam.samples if n == name and all(lab.get(k) == x for k, x in labels.items())]
    assert len(hits) == 1, f"{name} {labels}: {len(hits)} samples"
    return hits[0]


def scrape(port: int) -> dict[str, Family]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        return parse(response.read().decode())


def wait_metrics(port: int, check: Callable[[dict[str, Family]], bool], timeout: float = 20.0) -> dict[str, Family]:
    """Scrape until `check` holds (a scraper has no event to wait on: it polls, as Prometheus does)."""
    deadline = time.monotonic() + timeout
    while True:
        families = scrape(port)
        if check(families):
            return families
        assert time.monotonic() < deadline, "metrics never reached the expected state"
        time.sleep(0.1)


def check_conventions(families: dict[str, Family]) -> None:
    for fam in families.values():
        assert fam.help and fam.samples, fam.name
        assert fam.name.startswith("kiosk_")
        if fam.type == "counter":
            assert fam.name.endswith("_total"), fam.name
        if fam.type == "histogram":
            assert fam.name.endswith("_seconds"), fam.name
            buckets = [(float(lab["le"]), v) for n, lab, v in fam.samples if n.endswith("_bucket")]
            assert buckets[-1][0] == float("inf")
            assert [b[0] for b in buckets] == sorted(b[0] for b in buckets)
            assert [b[1] for b in buckets] == sorted(b[1] for b in buckets), "buckets must be cumulative"
            assert buckets[-1][1] == value(families, f"{fam.name}_count")
        for _, labels, _ in fam.samples:
            assert {k: labels.get(k) for k in LABELS} == LABELS, fam.name


def test_metrics_of_the_running_daemon_move(kiosk_env: dict[str, str], tmp_path: Path, mosquitto: Broker) -> None:
    web = free_port()
    env = {**kiosk_env, "KIOSK_MQTT__URL": mosquitto.url, "KIOSK_WEB__PORT": str(web), "KIOSK_CAMERA__SOURCE": "demo:",
           "KIOSK_VOICE__SINK": "null", "KIOSK_CALL__MICROPHONE": "tone:440", "KIOSK_CALL__SPEAKER": "null",
           "KIOSK_MQTT__RECONNECT_MAX": "0.5", "KIOSK_TELEMETRY__INTERVAL": "1"}
    daemon = subprocess.Popen([*KIOSK, "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_port(web, 30)
        first = wait_metrics(web, lambda f: value(f, "kiosk_mqtt_connected") == 1
                             and value(f, "kiosk_qr_decode_seconds_count") > 0)
        check_conventions(first)
        assert value(first, "kiosk_camera_up") == 1
        assert value(first, "kiosk_asyncio_tasks") > 5  # the daemon's loops, at least
        assert value(first, "kiosk_call_state", state="idle") == 1
        assert value(first, "kiosk_call_state", state="ringing") == 0
        assert value(first, "kiosk_announcer_queue_length") >= 0
        assert first["kiosk_qr_decode_seconds"].type == "histogram"
        assert first["kiosk_camera_frames_total"].type == "counter"

        # The demo camera keeps showing codes: decodes and check-in decisions accumulate.
        moved = wait_metrics(web, lambda f: value(f, "kiosk_qr_decode_seconds_count")
                             > value(first, "kiosk_qr_decode_seconds_count") + 3
                             and "kiosk_checkin_decisions_total" in f, timeout=40)
        assert value(moved, "kiosk_camera_frames_total") > value(first, "kiosk_camera_frames_total")
        assert value(moved, "kiosk_camera_fps") > 0
        assert value(moved, "kiosk_qr_decode_seconds_sum") > 0
        assert {lab["result"] for _, lab, _ in moved["kiosk_checkin_decisions_total"].samples} <= {"accepted",
                                                                                                  "rejected"}

        # Broker gone: the link is reported down, and tickets taken meanwhile are a backlog with an age.
        mosquitto.kill()
        wait_metrics(web, lambda f: value(f, "kiosk_mqtt_connected") == 0)
        for _ in range(3):
            run_kiosk(env, "ticket", "take", "khai-sinh", check=True)
        down = wait_metrics(web, lambda f: value(f, "kiosk_outbox_backlog_events") >= 3)
        assert value(down, "kiosk_outbox_oldest_unsent_age_seconds") >= 0
        assert value(down, "kiosk_tickets_waiting", service="khai-sinh") >= 3

        # Broker back: one reconnect counted, the backlog drains.
        mosquitto.start()
        back = wait_metrics(web, lambda f: value(f, "kiosk_mqtt_connected") == 1
                            and value(f, "kiosk_outbox_backlog_events") == 0)
        assert value(back, "kiosk_mqtt_reconnects_total") >= 1 + value(first, "kiosk_mqtt_reconnects_total")
        check_conventions(back)

        # Telemetry carries the same sources: the decode histogram and the reconnects are there too.
        telemetry = _one_telemetry(mosquitto.url)
        assert telemetry["mqtt"]["connects"] >= 2
        assert telemetry["scanner"]["decode_seconds"]["count"] > 0
        assert "queue_length" in telemetry["announcer"]

        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=30)
        assert daemon.returncode == 0, err
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate()


def _one_telemetry(url: str) -> dict[str, object]:
    """The retained telemetry message (fresh: the restarted broker kept nothing from before)."""

    async def read() -> dict[str, object]:
        stop = asyncio.Event()
        got: asyncio.Queue[bytes] = asyncio.Queue()
        client = MqttClient(MqttOptions(url=url, client_id="metrics-test"))
        client.subscribe("wards/26740/demo-01/telemetry", lambda m: got.put_nowait(m.payload))
        runner = asyncio.create_task(client.run(stop))
        try:
            async with asyncio.timeout(15):
                body: dict[str, object] = json.loads(await got.get())
                return body
        finally:
            stop.set()
            await runner

    return asyncio.run(read())


def test_a_failing_source_and_odd_labels_still_give_a_valid_page() -> None:
    # A telemetry source that raised appears as {"error": …}: its series are left out and
    # kiosk_metrics_source_up says so; label values with quotes, backslashes and newlines are escaped.
    hist = DurationHistogram((0.01, 0.1))
    for seconds in (0.005, 0.05, 0.5):
        hist.observe(seconds)
    snap = {"camera": {"error": "RuntimeError: boom"}, "scanner": {"frames_decoded": 3, "decode_seconds":
                                                                    hist.snapshot(), "decisions": {"cccd:accepted": 2}}}
    metrics = WebMetrics(labels=LABELS, snapshot=lambda: dict(snap))
    metrics.count("GET", '/x"y\\z\n', 200)
    page = parse(metrics.render(last_seq=7, waiting={"khai-sinh": 2}, live_clients=0, live_messages=0,
                                auth_failures=0, announcer=None))
    check_conventions(page)
    assert "kiosk_camera_up" not in page
    assert value(page, "kiosk_metrics_source_up", source="camera") == 0
    assert value(page, "kiosk_metrics_source_up", source="scanner") == 1
    assert value(page, "kiosk_qr_decode_seconds_bucket", le="0.01") == 1
    assert value(page, "kiosk_qr_decode_seconds_bucket", le="0.1") == 2
    assert value(page, "kiosk_qr_decode_seconds_bucket", le="+Inf") == 3
    assert abs(value(page, "kiosk_qr_decode_seconds_sum") - 0.555) < 1e-9
    assert value(page, "kiosk_checkin_decisions_total", kind="cccd", result="accepted") == 2
    assert value(page, "kiosk_http_requests_total", route='/x\\"y\\\\z\\n') == 1
