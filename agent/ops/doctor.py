"""`kiosk doctor`: every part a technician can check on site, each with a clear verdict.

A check returns ok, warn (works, but look at it) or fail (this kiosk will not work properly).
Checks never change state, except writing and removing one probe file in the data folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import os
import sqlite3
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from cryptography import x509

from agent.errors import InvalidInput, KioskError
from agent.ops.provision import unacknowledged_events
from agent.queue.catalogue import load_catalogue
from agent.settings import Settings

OK, WARN, FAIL = "ok", "warn", "fail"
FREE_WARN_BYTES = 1 << 30
FREE_FAIL_BYTES = 100 << 20


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    data: dict[str, Any] = dataclasses.field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        return {"check": self.name, "status": self.status, "detail": self.detail, **self.data}


def check_config(settings: Settings) -> Check:
    try:
        cat = load_catalogue(settings.catalogue_path())
    except KioskError as exc:
        return Check("config", FAIL, exc.message)
    where = settings.config_file or "defaults"
    return Check("config", OK, f"{where}: ward {settings.device.ward}, kiosk {settings.device.kiosk}, "
                 f"{len(cat.services())} services")


def check_data_dir(settings: Settings, statvfs: Callable[[str], os.statvfs_result] = os.statvfs) -> Check:
    folder = settings.data_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".doctor-{os.getpid()}"
        with probe.open("wb") as fh:
            fh.write(b"x" * 4096)
            fh.flush()
            os.fsync(fh.fileno())
        probe.unlink()
    except OSError as exc:
        return Check("data_dir", FAIL, f"{folder} is not writable: {exc.strerror}")
    st = statvfs(str(folder))
    free = st.f_bavail * st.f_frsize
    mib = free // (1 << 20)
    if free < FREE_FAIL_BYTES:
        return Check("data_dir", FAIL, f"{folder}: only {mib} MiB free", {"free_bytes": free})
    if free < FREE_WARN_BYTES:
        return Check("data_dir", WARN, f"{folder}: {mib} MiB free (below 1 GiB)", {"free_bytes": free})
    return Check("data_dir", OK, f"{folder}: {mib} MiB free", {"free_bytes": free})


def check_database(settings: Settings) -> Check:
    path = settings.db_path()
    if not path.exists():
        return Check("database", WARN, f"{path} does not exist yet (created on first start)")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            result = conn.execute("PRAGMA integrity_check").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return Check("database", FAIL, f"{path}: {exc}")
    if result != "ok":
        return Check("database", FAIL, f"{path}: integrity check failed: {result}")
    return Check("database", OK, f"{path}: integrity ok, schema {version}")


def check_clock() -> Check:
    from agent.sync.telemetry import clock_state

    state = clock_state()
    if state == "synchronized":
        return Check("clock", OK, "synchronised (NTP)")
    if state == "unsynchronized":
        return Check("clock", FAIL, "not synchronised: tickets and events will carry a wrong time; check NTP")
    return Check("clock", WARN, "synchronisation state unknown")


def check_camera(settings: Settings, seconds: float = 2.0, min_fps: float = 5.0) -> Check:
    from agent.demo_payloads import demo_payloads
    from devices.camera import open_source

    if not settings.camera.enabled:
        return Check("camera", WARN, "disabled in settings")
    try:
        source = open_source(settings.camera.source, demo_payloads=demo_payloads(settings))
        source.open()
    except KioskError as exc:
        return Check("camera", FAIL, exc.message)
    frames = 0
    shape: tuple[int, ...] = ()
    start = time.monotonic()
    try:
        while time.monotonic() - start < seconds:
            frame = source.read()
            if frame is None:
                break
            frames += 1
            shape = frame.shape
    except KioskError as exc:
        return Check("camera", FAIL, f"{source.name}: {exc.message}")
    finally:
        source.close()
    fps = frames / max(1e-6, time.monotonic() - start)
    if frames == 0:
        return Check("camera", FAIL, f"{source.name}: opened but delivered no frame")
    detail = f"{source.name}: {fps:.1f} fps, {shape[1]}x{shape[0]}"
    return Check("camera", OK if fps >= min_fps else WARN, detail, {"fps": round(fps, 1)})


def check_microphone(settings: Settings, seconds: float = 1.0) -> Check:
    from devices.audio import open_source as open_audio

    async def level() -> float:
        source = open_audio(settings.call.microphone)
        chunks: list[np.ndarray[Any, Any]] = []
        deadline = time.monotonic() + seconds
        async with contextlib.aclosing(source.frames()) as frames:
            async for chunk in frames:
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    break
        pcm = np.concatenate(chunks).astype(np.float64) if chunks else np.zeros(1)
        return float(np.sqrt(np.mean(pcm**2)) / 32768.0)

    try:
        rms = asyncio.run(level())
    except KioskError as exc:
        return Check("microphone", FAIL, exc.message)
    db = 20 * np.log10(max(rms, 1e-9))
    if rms < 1e-4:
        return Check("microphone", WARN, f"{settings.call.microphone}: silent ({db:.0f} dBFS)", {"dbfs": round(db)})
    return Check("microphone", OK, f"{settings.call.microphone}: level {db:.0f} dBFS", {"dbfs": round(db)})


def check_speaker(settings: Settings) -> Check:
    from devices.audio import open_sink

    rate = 48_000
    t = np.arange(int(rate * 0.4)) / rate
    tone = (np.sin(2 * np.pi * 880 * t) * 0.2 * 32767).astype(np.int16)
    try:
        sink = open_sink(settings.voice.sink)
        asyncio.run(sink.play(tone, rate))
    except KioskError as exc:
        return Check("speaker", FAIL, exc.message)
    return Check("speaker", OK, f"{settings.voice.sink}: test tone played (880 Hz, 0.4 s)")


def check_certificate(settings: Settings) -> Check:
    cert_file = settings.mqtt.cert_file
    if cert_file is None:
        return Check("certificate", OK, "no client certificate configured")
    path = settings.config_path(cert_file)
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        return Check("certificate", FAIL, f"{path}: cannot read: {exc}")
    left = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    days = left.days
    if left.total_seconds() <= 0:
        return Check("certificate", FAIL, f"{path}: expired on {cert.not_valid_after_utc:%Y-%m-%d}", {"days": days})
    if days < 30:
        return Check("certificate", WARN, f"{path}: expires in {days} days", {"days": days})
    return Check("certificate", OK, f"{path}: valid for {days} more days", {"days": days})


def check_broker(settings: Settings, timeout: float = 8.0) -> list[Check]:
    """TCP reach, TLS handshake, authentication and a round trip through the broker, as separate lines."""
    from agent.mqtt_client import Message, MqttClient, redact_url
    from agent.sync.runner import mqtt_options
    from agent.sync.topics import KioskTopics

    if not settings.mqtt.enabled:
        return [Check("broker", WARN, "sync disabled in settings")]
    # Its own client id and no will: the doctor must not kick the running agent off the broker.
    opts = dataclasses.replace(mqtt_options(settings, 0), client_id=f"doctor-{settings.device.kiosk}-{os.getpid()}",
                               will=None, connect_timeout=timeout, reconnect_min=60, publish_timeout=timeout)
    url = redact_url(settings.mqtt.url)
    checks: list[Check] = []
    import socket

    try:
        with socket.create_connection((opts.host, opts.port), timeout=timeout) as sock:
            checks.append(Check("broker_tcp", OK, f"{url} reachable"))
            if opts.tls:
                ctx = ssl.create_default_context(cafile=str(opts.ca_file) if opts.ca_file else None)
                if opts.cert_file and opts.key_file:
                    ctx.load_cert_chain(str(opts.cert_file), str(opts.key_file))
                with ctx.wrap_socket(sock, server_hostname=opts.host) as tls:
                    checks.append(Check("broker_tls", OK, f"TLS {tls.version()} handshake ok"))
    except ssl.SSLError as exc:
        return [*checks, Check("broker_tls", FAIL, f"TLS handshake failed: {exc.reason or exc}")]
    except OSError as exc:
        return [*checks, Check("broker_tcp", FAIL, f"{url} not reachable: {exc.strerror or exc}")]

    async def round_trip() -> float:
        client = MqttClient(opts)
        stop = asyncio.Event()
        topics = KioskTopics(settings.mqtt.root, settings.device.ward, settings.device.kiosk)
        # The broker ACL gives each kiosk one topic tree it may both write and read: an echo there
        # proves authentication and both directions without touching anyone else's topics.
        topic = f"{topics.base}/doctor/echo"
        got: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        token = os.urandom(8).hex().encode()

        def on_message(msg: Message) -> None:
            if msg.payload == token and not got.done():
                got.set_result(time.perf_counter())

        client.subscribe(topic, on_message)
        runner = asyncio.create_task(client.run(stop))
        try:
            async with asyncio.timeout(timeout):
                if await client.wait_connected(stop) is None:
                    raise TimeoutError
                await asyncio.sleep(0.1)  # let the SUBACK arrive before publishing
                t0 = time.perf_counter()
                await client.publish(topic, token, qos=1)
                return (await got) - t0
        finally:
            stop.set()
            await runner

    try:
        seconds = asyncio.run(round_trip())
    except TimeoutError:
        return [*checks, Check("broker_auth", FAIL, f"no connection or no echo within {timeout:g} s; "
                               "check the user name, password or certificate, and the ACL")]
    except KioskError as exc:
        return [*checks, Check("broker_auth", FAIL, exc.message)]
    checks.append(Check("broker_roundtrip", OK, f"authenticated; round trip {seconds * 1000:.0f} ms",
                        {"ms": round(seconds * 1000, 1)}))
    return checks


def check_outbox(settings: Settings) -> Check:
    path = settings.db_path()
    pending = unacknowledged_events(path)
    if not pending:
        return Check("outbox", OK, "every event acknowledged by central", {"unacknowledged": 0})
    oldest = None
    with contextlib.suppress(sqlite3.DatabaseError):
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT MIN(e.at) FROM events e, sync_state s WHERE e.seq > s.acked_seq").fetchone()
            oldest = row[0] if row else None
        finally:
            conn.close()
    detail = f"{pending} events not yet acknowledged" + (f", oldest from {oldest}" if oldest else "")
    status = WARN if pending < 1000 else FAIL
    return Check("outbox", status, detail, {"unacknowledged": pending, "oldest": oldest})


def check_printer(settings: Settings) -> Check:
    from agent.printing.checks import probe

    status, detail, data = probe(settings)
    return Check("printer", status, detail, data)


def run_all(settings: Settings, *, audio: bool = True, camera_seconds: float = 2.0,
            skip: set[str] | None = None) -> list[Check]:
    skip = skip or set()
    plan: list[tuple[str, Callable[[], Check | list[Check]]]] = [
        ("config", lambda: check_config(settings)),
        ("data_dir", lambda: check_data_dir(settings)),
        ("database", lambda: check_database(settings)),
        ("clock", check_clock),
        ("camera", lambda: check_camera(settings, camera_seconds)),
    ]
    if audio:
        plan += [("microphone", lambda: check_microphone(settings)), ("speaker", lambda: check_speaker(settings))]
    plan += [("broker", lambda: check_broker(settings)), ("certificate", lambda: check_certificate(settings)),
             ("outbox", lambda: check_outbox(settings)), ("printer", lambda: check_printer(settings))]
    unknown = skip - {name for name, _ in plan} - {"microphone", "speaker"}
    if unknown:
        raise InvalidInput(f"unknown check(s) to skip: {', '.join(sorted(unknown))}")
    checks: list[Check] = []
    for name, run in plan:
        if name in skip:
            checks.append(Check(name, WARN, "skipped"))
            continue
        result = run()
        checks += result if isinstance(result, list) else [result]
    return checks
