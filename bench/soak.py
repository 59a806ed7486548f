"""A day in the life (#11 item 11): `.venv/bin/python bench/soak.py [--tickets 600] [--json]`.

Drives the REAL programs as subprocesses on tmp dirs: mosquitto on a free 127.0.0.1 port, `kiosk central
ingest` into a central SQLite file (or `--central postgresql://…`), and `kiosk run` with the demo camera
(its check-ins: an appointment QR, a dossier receipt, an ID card, in turn). An office day 07:30–17:00 is
played on an accelerated clock: the day's arrivals (a morning and an early-afternoon peak) are laid out
in simulated time and replayed `--day-seconds` wall seconds long; the daemon itself runs on real time (its
numbers restart at local midnight, which a run does not cross). Residents take tickets over the web API,
six counters call/finish them, some rate, a few video calls ring out unanswered (missed). Faults at fixed
points of the day: broker kill -9s, a network cut (the broker SIGSTOPped: the TCP path goes silent, as a
dead link does), and two agent restarts (one SIGTERM, one kill -9).

After the day: every event in the kiosk's log is in central exactly once (same seq, same id), ticket
numbers are unique per day and prefix, every issued ticket is in the kiosk, and RSS, open file
descriptors, threads (/proc) and asyncio tasks (`kiosk_asyncio_tasks` on /metrics) are flat over the
last agent run (the longest; end/start after a warm-up). Exit 1 when an invariant fails.
tests/test_soak.py runs the same code on a short day.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# bench/queue.py would shadow the standard library's `queue` (used by asyncio's thread pool).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import aiohttp  # noqa: E402

from agent.checkin.appointment import public_key_text  # noqa: E402
from agent.demo_payloads import DEMO_KEY, DEMO_KEY_ID  # noqa: E402
from central.db import Db  # noqa: E402
from tests.brokers import Broker, free_port, wait_port  # noqa: E402

ROOT = _HERE.parent
KIOSK = [sys.executable, "-m", "agent.cli.main"]
WARD, KIOSK_ID = "26734", "soak-01"
DAY_START_H, DAY_END_H = 7.5, 17.0
PINS = {str(n): f"{n}{n}{n}{n}" for n in range(1, 10)}
WARMUP = 0.25  # share of a run's samples skipped before the flatness figures


@dataclass
class Plan:
    tickets: int = 600
    day_seconds: float = 150.0  # wall seconds for the whole office day
    broker_kills: tuple[float, ...] = (0.15, 0.55)  # points of the day (0..1)
    net_cuts: tuple[float, ...] = (0.35,)
    net_cut_seconds: float = 4.0
    restarts: tuple[float, ...] = (0.25, 0.45)
    restart_signals: tuple[str, ...] = ("SIGTERM", "SIGKILL")  # restart i stops the agent with signal i
    calls: tuple[float, ...] = (0.1, 0.5, 0.8)
    samples: int = 60
    seed: int = 11
    central: str | None = None  # postgresql://… ; default a SQLite file in the work dir


@dataclass
class Sample:
    t: float  # share of the day
    run: int  # agent run (0 before the first restart)
    rss_kb: int
    fds: int
    threads: int
    tasks: int | None


@dataclass
class Day:
    issued: list[str] = field(default_factory=list)  # ticket ids answered 201
    refused: Counter[str] = field(default_factory=Counter)  # takes answered otherwise, by status and code
    served: int = 0
    ratings: int = 0
    calls: list[str] = field(default_factory=list)  # final call states
    http_retries: int = 0
    samples: list[Sample] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)


def arrivals(plan: Plan) -> list[float]:
    """Simulated arrival times (share of the day), a morning peak and a smaller one after lunch."""
    rng = random.Random(plan.seed)
    out = []
    while len(out) < plan.tickets:
        hour = rng.gauss(9.0, 1.0) if rng.random() < 0.65 else rng.gauss(14.0, 1.0)
        if DAY_START_H <= hour < DAY_END_H:
            out.append((hour - DAY_START_H) / (DAY_END_H - DAY_START_H))
    return sorted(out)


def sim_clock(share: float) -> str:
    hours = DAY_START_H + share * (DAY_END_H - DAY_START_H)
    return f"{int(hours):02d}:{int(hours % 1 * 60):02d}"


def agent_env(work: Path, broker_url: str, web_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK_") and k != "JOURNAL_STREAM"}
    env.update({
        "PYTHONPATH": str(ROOT), "KIOSK_STORAGE__DATA_DIR": str(work / "kiosk"),
        "KIOSK_QUEUE__ENFORCE_HOURS": "false", "KIOSK_QUEUE__CATALOGUE": str(ROOT / "config" / "services.toml"),
        "KIOSK_DEVICE__WARD": WARD, "KIOSK_DEVICE__KIOSK": KIOSK_ID,
        "KIOSK_MQTT__URL": broker_url, "KIOSK_MQTT__RECONNECT_MIN": "0.05", "KIOSK_MQTT__RECONNECT_MAX": "0.5",
        "KIOSK_MQTT__KEEPALIVE": "5", "KIOSK_MQTT__PUBLISH_TIMEOUT": "2", "KIOSK_MQTT__ACK_TIMEOUT": "1",
        "KIOSK_TELEMETRY__INTERVAL": "5", "KIOSK_WEB__PORT": str(web_port),
        # One bench client plays every resident: lift the per-client limit.
        "KIOSK_WEB__RESIDENT_BURST": "10000", "KIOSK_WEB__RESIDENT_PER_MINUTE": "10000",
        "KIOSK_WEB__COUNTER_PINS": json.dumps(PINS),
        "KIOSK_CAMERA__SOURCE": "demo:?fps=5", "KIOSK_VOICE__SINK": "null", "KIOSK_PRINTER__ENABLED": "false",
        "KIOSK_CALL__MICROPHONE": "tone:440", "KIOSK_CALL__SPEAKER": "null",
        "KIOSK_CALL__RING_TIMEOUT_SECONDS": "1", "KIOSK_CALL__HOST_ADDRESSES": '["127.0.0.1"]',
        "KIOSK_CHECKIN__APPOINTMENT_KEYS": json.dumps({DEMO_KEY_ID: public_key_text(DEMO_KEY)}),
    })
    return env


class Agent:
    """`kiosk run` as a subprocess; restarts keep the data dir."""

    def __init__(self, env: dict[str, str], web_port: int, log: Path) -> None:
        self.env, self.web_port, self.log = env, web_port, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self.hung: list[str] = []
        self.ready = False  # serving: samples taken while Python still imports would make any curve "grow"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([*KIOSK, "run"], env=self.env, stdout=log, stderr=log)
        self.runs += 1
        wait_port(self.web_port, 60)
        self.ready = True

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.ready = False
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a hung shutdown is a finding, not the end of the day
            self.proc.kill()
            code = self.proc.wait()
            tail = self.log.read_text(errors="replace").splitlines()[-15:]
            self.hung.append(f"did not stop within 30 s of {signal.Signals(sig).name}; log tail: " + " | ".join(tail))
        self.proc = None
        return code


class Http:
    """The residents' and counters' side, retrying while the kiosk is down (they wait at the door)."""

    def __init__(self, session: aiohttp.ClientSession, port: int, day: Day) -> None:
        self.session, self.base, self.day = session, f"http://127.0.0.1:{port}", day

    async def call(self, method: str, path: str, body: object = None, headers: dict[str, str] | None = None,
                   ok: tuple[int, ...] = (200, 201), deadline_s: float = 90) -> tuple[int, Any]:
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                async with self.session.request(method, self.base + path, json=body, headers=headers,
                                                timeout=aiohttp.ClientTimeout(total=15)) as resp:
                    data = await resp.json(content_type=None) if resp.status != 204 else None
                    if resp.status < 500 or resp.status in ok:
                        return resp.status, data
            except (aiohttp.ClientError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{method} {path}: the kiosk did not answer in {deadline_s:.0f} s")
            self.day.http_retries += 1
            await asyncio.sleep(0.2)  # between retries only: the kiosk is restarting


def proc_sample(pid: int) -> tuple[int, int, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    return rss, len(os.listdir(f"/proc/{pid}/fd")), threads


async def tasks_gauge(http: Http) -> int | None:
    try:
        async with http.session.get(http.base + "/metrics", timeout=aiohttp.ClientTimeout(total=5)) as resp:
            text = await resp.text()
    except (aiohttp.ClientError, TimeoutError):
        return None
    match = re.search(r"^kiosk_asyncio_tasks(?:\{[^}]*\})? (\S+)$", text, re.M)
    return int(float(match.group(1))) if match else None


async def play_day(plan: Plan, work: Path, broker: Broker, agent: Agent, http: Http, day: Day) -> None:
    rng = random.Random(plan.seed + 1)
    start = time.monotonic()

    def share() -> float:
        return (time.monotonic() - start) / plan.day_seconds

    async def until(point: float) -> None:
        await asyncio.sleep(max(0.0, start + point * plan.day_seconds - time.monotonic()))

    _, services = await http.call("GET", "/api/services")
    codes = [s["code"] for g in services["groups"] for s in g["services"]]
    counters = [c["number"] for c in services["counters"]]
    levels = int(services["rating"]["levels"])
    done = asyncio.Event()

    async def residents() -> None:
        for at in arrivals(plan):
            await until(at)
            status, data = await http.call("POST", "/api/tickets", {"service": rng.choice(codes)})
            if status == 201:
                day.issued.append(data["id"])
            else:
                day.refused[f"{status} {data.get('code') if isinstance(data, dict) else ''}"] += 1
        done.set()

    async def counter(n: int) -> None:
        auth = {"Authorization": f"Bearer {PINS[str(n)]}"}
        serve = plan.day_seconds / max(1, plan.tickets) * len(counters) * 0.8  # a little faster than arrivals
        while not (done.is_set() and share() > 1.0):
            status, data = await http.call("POST", f"/api/counters/{n}/next", headers=auth, ok=(200, 404, 409))
            ticket = data.get("ticket") if status == 200 and isinstance(data, dict) else None
            if ticket is None:
                if done.is_set():
                    return
                await asyncio.sleep(serve / 2)  # an idle counter looks again a little later
                continue
            await asyncio.sleep(serve * rng.uniform(0.5, 1.5))
            status, _ = await http.call("POST", f"/api/counters/{n}/done", headers=auth, ok=(200, 409))
            if status == 200:
                day.served += 1
                if rng.random() < 0.4:
                    status, _ = await http.call("POST", f"/api/tickets/{ticket['id']}/rating",
                                                {"score": rng.randint(1, levels)}, ok=(201, 409))
                    day.ratings += status == 201

    async def sampler() -> None:
        for i in range(plan.samples + 1):
            await until(i / plan.samples)
            proc = agent.proc
            if proc is None or not agent.ready:
                continue
            try:
                rss, fds, threads = proc_sample(proc.pid)
            except (OSError, AttributeError):
                continue  # between a stop and a start
            day.samples.append(Sample(round(share(), 3), agent.runs - 1, rss, fds, threads, await tasks_gauge(http)))

    async def call(at: float) -> None:
        await until(at)
        status, data = await http.call("POST", "/api/calls", {"service": rng.choice(codes)}, ok=(201, 409, 503))
        if status != 201:
            day.calls.append(f"refused {status} {data.get('code') if isinstance(data, dict) else ''}".rstrip())
            return
        deadline = time.monotonic() + 20
        state = data["state"]
        while state == "ringing" and time.monotonic() < deadline:
            await asyncio.sleep(0.2)  # polling the call's state with a deadline
            _, shown = await http.call("GET", f"/api/calls/{data['call']}", ok=(200, 404))
            state = shown.get("state", "gone") if isinstance(shown, dict) else "gone"
        day.calls.append(state)

    async def faults() -> None:
        events = sorted([(p, "broker-kill") for p in plan.broker_kills] + [(p, "net-cut") for p in plan.net_cuts]
                        + [(p, "restart") for p in plan.restarts])
        restarts = 0
        for point, kind in events:
            await until(point)
            if kind == "broker-kill":
                broker.kill()
                await asyncio.sleep(1.0)  # the broker stays away a second; the kiosk keeps writing
                await asyncio.to_thread(broker.start)
            elif kind == "net-cut":
                assert broker.proc is not None
                broker.proc.send_signal(signal.SIGSTOP)  # nothing answers, nothing closes: a dead link
                await asyncio.sleep(plan.net_cut_seconds)
                broker.proc.send_signal(signal.SIGCONT)
            else:
                sig = signal.Signals[plan.restart_signals[restarts % len(plan.restart_signals)]]
                restarts += 1
                code = await asyncio.to_thread(agent.stop, sig)
                await asyncio.to_thread(agent.start)
                kind = f"restart ({sig.name}, exit {code})"
            day.faults.append(f"{sim_clock(point)} {kind}")

    await asyncio.gather(residents(), sampler(), faults(), *(counter(n) for n in counters),
                         *(call(at) for at in plan.calls))


def kiosk_events(work: Path) -> list[tuple[int, str, str]]:
    conn = sqlite3.connect(f"file:{work / 'kiosk' / 'kiosk.db'}?mode=ro", uri=True, timeout=30)
    try:
        return [(int(s), i, t) for s, i, t in conn.execute("SELECT seq, id, type FROM events ORDER BY seq")]
    finally:
        conn.close()


def kiosk_tickets(work: Path) -> list[tuple[str, str, str]]:
    conn = sqlite3.connect(f"file:{work / 'kiosk' / 'kiosk.db'}?mode=ro", uri=True, timeout=30)
    try:
        return [(i, d, n) for i, d, n in conn.execute("SELECT id, day, number FROM tickets")]
    finally:
        conn.close()


def central_events(target: str) -> list[tuple[int, str]]:
    db = Db(target)
    try:
        rows = db.query("SELECT seq, id FROM central_events WHERE ward = ? AND kiosk = ? ORDER BY seq",
                        (WARD, KIOSK_ID))
        return [(int(r[0]), str(r[1])) for r in rows]
    except Exception:  # noqa: BLE001 - the ingest has not created its table yet
        return []
    finally:
        db.close()


async def converge(work: Path, target: str,
                   timeout: float = 60) -> tuple[list[tuple[int, str, str]], list[tuple[int, str]]]:
    """Wait until central holds every event the kiosk had when we started waiting (new ones may follow)."""
    wanted = {(s, i) for s, i, _ in kiosk_events(work)}
    deadline = time.monotonic() + timeout
    while True:
        got = central_events(target)
        if wanted <= set(got) or time.monotonic() > deadline:
            return kiosk_events(work), got
        await asyncio.sleep(0.25)  # polling central with a deadline


def flatness(samples: list[Sample]) -> dict[str, Any]:
    """Start and end of the last agent run's curves (medians of 3 samples after the warm-up)."""
    if not samples:
        return {"verdict": "no samples", "flat": False}
    last = max(s.run for s in samples)
    run = [s for s in samples if s.run == last]
    run = run[int(len(run) * WARMUP):] if len(run) >= 8 else run
    if len(run) < 4:  # a restart that took most of a short day: no curve to judge
        return {"run": last, "samples": len(run), "flat": False, "verdict": "too few samples",
                **{k: (float("nan"), float("nan")) for k in ("rss_kb", "fds", "threads", "tasks")}, "rss_ratio": None}

    def ends(key: str) -> tuple[float, float]:
        vals = [getattr(s, key) for s in run if getattr(s, key) is not None]
        if not vals:
            return float("nan"), float("nan")
        return statistics.median(vals[:3]), statistics.median(vals[-3:])

    out: dict[str, Any] = {"run": last, "samples": len(run)}
    for key in ("rss_kb", "fds", "threads", "tasks"):
        out[key] = ends(key)
    rss0, rss1 = out["rss_kb"]
    # Bounds: RSS may settle (allocator arenas, caches) but not climb; fds, threads, tasks come and go with
    # requests and reconnects, within a few.
    flat = (rss1 <= rss0 * 1.15 and out["fds"][1] <= out["fds"][0] + 4
            and out["threads"][1] <= out["threads"][0] + 2
            and not out["tasks"][1] > out["tasks"][0] + 10)
    out["rss_ratio"] = round(rss1 / rss0, 3) if rss0 else None
    out["flat"] = bool(flat)
    return out


def check(day: Day, kiosk: list[tuple[int, str, str]], central: list[tuple[int, str]],
          tickets: list[tuple[str, str, str]]) -> dict[str, Any]:
    """The day's invariants; `failures` lists each one broken."""
    failures = []
    kiosk_ids = {s: i for s, i, _ in kiosk}
    central_count = Counter(s for s, _ in central)
    missing = [s for s in kiosk_ids if s not in central_count]
    twice = [s for s, n in central_count.items() if n > 1]
    wrong_id = [s for s, i in central if s in kiosk_ids and kiosk_ids[s] != i]
    foreign = [s for s, _ in central if s not in kiosk_ids]
    if missing:
        failures.append(f"{len(missing)} kiosk events missing in central (first seqs {missing[:5]})")
    if twice:
        failures.append(f"{len(twice)} events twice in central (seqs {twice[:5]})")
    if wrong_id or foreign:
        failures.append(f"central disagrees with the kiosk log: ids differ at {wrong_id[:5]}, unknown seqs "
                        f"{foreign[:5]}")
    numbers = Counter((d, n) for _, d, n in tickets)
    dup = [k for k, n in numbers.items() if n > 1]
    if dup:
        failures.append(f"ticket numbers issued twice: {dup[:5]}")
    ids = {i for i, _, _ in tickets}
    lost = [i for i in day.issued if i not in ids]
    if lost:
        failures.append(f"{len(lost)} tickets answered 201 but not in the kiosk")
    issued_events = sum(1 for _, _, t in kiosk if t == "ticket.issued")
    if issued_events != len(tickets):
        failures.append(f"{issued_events} ticket.issued events for {len(tickets)} tickets")
    if day.served == 0:
        failures.append("no counter served a ticket")
    return {"failures": failures, "kiosk_events": len(kiosk), "central_events": len(central),
            "tickets": len(tickets), "issued_ok": len(day.issued)}


def start_central(work: Path, target: str) -> tuple[Broker, subprocess.Popen[bytes], Agent]:
    """The broker and `kiosk central ingest` running; the agent configured, not started."""
    work.mkdir(parents=True, exist_ok=True)
    broker = Broker(work / "broker").start()
    env = agent_env(work, broker.url, free_port())
    with (work / "ingest.log").open("ab") as log:
        ingest = subprocess.Popen([*KIOSK, "central", "ingest", "--broker", broker.url, "--db", target],
                                  env=env, stdout=log, stderr=log)
    return broker, ingest, Agent(env, int(env["KIOSK_WEB__PORT"]), work / "agent.log")


async def run_day(plan: Plan, work: Path) -> dict[str, Any]:
    """The whole soak; returns figures and `failures` (empty when every invariant holds)."""
    target = plan.central or str(work / "central.db")
    broker, ingest, agent = await asyncio.to_thread(start_central, work, target)
    day = Day()
    started = time.monotonic()
    try:
        await asyncio.to_thread(agent.start)
        async with aiohttp.ClientSession() as session:
            http = Http(session, agent.web_port, day)
            await play_day(plan, work, broker, agent, http, day)
        kiosk, central = await converge(work, target)
        await asyncio.to_thread(agent.stop)
    finally:
        if agent.proc is not None:
            agent.proc.kill()
            agent.proc.wait()
        ingest.terminate()
        try:
            ingest.wait(timeout=20)
        except subprocess.TimeoutExpired:
            ingest.kill()
            ingest.wait()
        broker.stop()
    result = check(day, kiosk, central, kiosk_tickets(work))
    result["failures"] += [f"agent {h}" for h in agent.hung]
    types = Counter(t for _, _, t in kiosk)
    flat = flatness(day.samples)
    if not flat["flat"]:
        result["failures"].append(f"resources not flat over the last run: {flat}")
    result.update({
        "wall_seconds": round(time.monotonic() - started, 1), "refused": dict(day.refused),
        "served": day.served, "ratings": day.ratings,
        "calls": day.calls, "faults": day.faults, "http_retries": day.http_retries, "agent_runs": agent.runs,
        "checkins": {t: n for t, n in types.items() if t.startswith("checkin.")},
        "flatness": flat, "samples": [asdict(s) for s in day.samples],
    })
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tickets", type=int, default=600)
    ap.add_argument("--day-seconds", type=float, default=150.0, help="wall seconds the office day lasts")
    ap.add_argument("--central", help="postgresql://… (default: a SQLite file in the tmp dir)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    plan = Plan(tickets=args.tickets, day_seconds=args.day_seconds, central=args.central)
    with tempfile.TemporaryDirectory(prefix="soak-") as d:
        result = asyncio.run(run_day(plan, Path(d)))
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        flat = result["flatness"]
        print(f"day 07:30–17:00 in {plan.day_seconds:.0f} s wall ({result['wall_seconds']} s with the drain), "
              f"{result['agent_runs']} agent runs; faults: {', '.join(result['faults'])}")
        print(f"tickets {result['tickets']} (answered 201: {result['issued_ok']}, refused: {result['refused']}), "
              f"served {result['served']}, "
              f"ratings {result['ratings']}, calls {result['calls']}, check-ins {result['checkins']}, "
              f"HTTP retries while down {result['http_retries']}")
        print(f"events: kiosk {result['kiosk_events']}, central {result['central_events']}")
        print(f"last run (#{flat.get('run')}, {flat.get('samples')} samples after warm-up), start → end: "
              f"RSS {flat['rss_kb'][0] / 1024:.1f} → {flat['rss_kb'][1] / 1024:.1f} MB (×{flat['rss_ratio']}), "
              f"fds {flat['fds'][0]:.0f} → {flat['fds'][1]:.0f}, threads {flat['threads'][0]:.0f} → "
              f"{flat['threads'][1]:.0f}, asyncio tasks {flat['tasks'][0]:.0f} → {flat['tasks'][1]:.0f}: "
              f"{'flat' if flat['flat'] else 'GROWING'}")
        for failure in result["failures"]:
            print(f"FAILED: {failure}")
        if not result["failures"]:
            print("invariants: central = kiosk (every seq once, same id), numbers unique, every ticket kept: OK")
    sys.exit(1 if result["failures"] else 0)


if __name__ == "__main__":
    main()
