"""Central KPI figures on PostgreSQL (127.0.0.1:5432, a database created for the run and dropped):

1. build W wards × D days × T tickets a day of kiosk events with COPY (issued, called, done /
   no-show / cancelled, ratings; about 3.2 events a ticket), then time the summariser over them;
2. the KPI page (`GET /kpi`) of one ward and of the city for the whole range over real HTTP:
   median and p95 of N requests each;
3. the summariser's cost to the ingest: the ingest's own store (agent/central/store.py) takes M
   events in batches of 100 alone, then M more while the summariser follows them in another process;
   the ratio of the two rates (target ≥ 0.7).

    .venv/bin/python bench/kpi.py [--wards 100] [--days 30] [--tickets 300] [--requests 20] [--ingest 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import re
import statistics
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from aiohttp import ClientSession, CookieJar  # noqa: E402
from aiohttp.test_utils import TestServer  # noqa: E402

from agent.central.store import open_store  # noqa: E402
from agent.central.validate import Envelope, Received  # noqa: E402
from central.db import Db  # noqa: E402
from central.schema import ensure_schema  # noqa: E402
from central.summarizer import Summarizer  # noqa: E402
from central.users import add_user  # noqa: E402
from central.web.app import WebSettings, build_app  # noqa: E402

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
FIRST_DAY = date(2026, 10, 1)
SERVICES = ["khai-sinh", "ket-hon", "chung-thuc", "cu-tru", "dat-dai"]
PASSWORD = "bench mật khẩu dài"


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def ticket_events(rng: random.Random, day: date, n: int) -> list[tuple[str, str, dict[str, Any]]]:
    """One ward-day of (type, at, data): tickets from 07:30 local (00:30 UTC), one every ~100 s."""
    out: list[tuple[str, str, dict[str, Any]]] = []
    start = datetime(day.year, day.month, day.day, 0, 30, tzinfo=UTC)
    for i in range(n):
        issued = start + timedelta(seconds=i * 100 + rng.randint(0, 60))
        ref = {"ticket": f"{day.isoformat()}-{i}", "number": f"A{i:03d}", "service": SERVICES[i % 5],
               "priority": None}
        out.append(("ticket.issued", iso(issued), {**ref, "source": "kiosk", "day": day.isoformat()}))
        fate = rng.random()
        if fate < 0.07:
            out.append(("ticket.cancelled", iso(issued + timedelta(minutes=40)), {**ref, "reason": "resident"}))
            continue
        wait = rng.randint(0, 3600)
        called = issued + timedelta(seconds=wait)
        counter = 1 + i % 4
        out.append(("ticket.called", iso(called), {**ref, "counter": counter, "waited_seconds": wait,
                                                    "reason": "next"}))
        if fate < 0.15:
            out.append(("ticket.no_show", iso(called + timedelta(minutes=3)), {**ref, "counter": counter,
                                                                                "reason": "max_recalls"}))
            continue
        service = rng.randint(60, 1500)
        out.append(("ticket.done", iso(called + timedelta(seconds=service)),
                    {**ref, "counter": counter, "service_seconds": service}))
        if rng.random() < 0.3:
            out.append(("rating.submitted", iso(called + timedelta(seconds=service + 30)),
                        {**ref, "rating": str(uuid.uuid4()), "score": rng.randint(1, 5), "scale": 5,
                         "counter": counter, "officer": None}))
    return out


def load(url: str, wards: int, days: int, tickets: int) -> int:
    """COPY every ward's events (one kiosk a ward) and set each kiosk's ack to its last seq."""
    rng = random.Random(12)
    total = 0
    acks: list[tuple[str, int]] = []
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy("COPY central_events (ward, kiosk, seq, id, type, at, data, received_at) FROM STDIN") as cp:
            for w in range(wards):
                ward, seq = f"{26000 + w:05d}", 0
                for d in range(days):
                    for type_, at, data in ticket_events(rng, FIRST_DAY + timedelta(days=d), tickets):
                        seq += 1
                        cp.write_row((ward, "k-01", seq, str(uuid.uuid4()), type_, at, json.dumps(data), at))
                total += seq
                acks.append((ward, seq))
        cur.executemany("INSERT INTO central_acks (ward, kiosk, seq, at) VALUES (%s, 'k-01', %s, %s)",
                        [(w, s, "2026-11-01T00:00:00.000Z") for w, s in acks])
        conn.commit()
    return total



async def page_times(base: str, paths: dict[str, str], requests: int) -> dict[str, dict[str, float]]:
    async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as http:  # cookies of an IP host
        page = await (await http.get(f"{base}/login")).text()
        token = re.search(r'name="csrf" value="([^"]+)"', page)
        assert token
        r = await http.post(f"{base}/login", data={"csrf": token.group(1), "name": "admin", "password": PASSWORD})
        assert r.status == 200, r.status
        out = {}
        for name, path in paths.items():
            times = []
            for _ in range(requests):
                t0 = time.perf_counter()
                resp = await http.get(f"{base}{path}")
                await resp.read()
                assert resp.status == 200, (path, resp.status)
                times.append(time.perf_counter() - t0)
            times.sort()
            out[name] = {"median_s": round(statistics.median(times), 3),
                         "p95_s": round(times[max(0, int(0.95 * len(times) + 0.5) - 1)], 3)}
        return out


async def serve_and_measure(url: str, wards: int, days: int, requests: int) -> dict[str, dict[str, float]]:
    end = FIRST_DAY + timedelta(days=days - 1)
    settings = WebSettings(db=url, summarise_every=3600, today=lambda: end)
    server = TestServer(build_app(settings), host="127.0.0.1")
    await server.start_server()
    try:
        base = str(server.make_url("")).rstrip("/")
        rng = f"from={FIRST_DAY.isoformat()}&to={end.isoformat()}"
        return await page_times(base, {"ward": f"/kpi?ward={26000 + wards // 2:05d}&{rng}",
                                       "city": f"/kpi?{rng}"}, requests)
    finally:
        await server.close()


def follow(url: str, stop: Any) -> None:
    """The serve's summariser loop: fold what is pending, then wait its interval."""
    db = Db(url)
    summ = Summarizer(db)
    every = WebSettings(db=url).summarise_every
    while not stop.is_set():
        summ.run_once()
        stop.wait(every)
    db.close()


def ingest_rates(url: str, events: int) -> dict[str, float]:
    """Events/s the ingest's store takes alone, then with the summariser following it."""
    store = open_store(url)
    rng = random.Random(7)

    def batches(kiosk: str) -> list[list[Received]]:
        evs = ticket_events(rng, FIRST_DAY, events * 2)[:events]
        out = []
        for seq, (type_, at, data) in enumerate(evs, start=1):
            raw = json.dumps(data)
            out.append(Received(Envelope(v=1, id=str(uuid.uuid4()), kiosk=kiosk, ward="39999", seq=seq,
                                         type=type_, at=at, data=data), raw))
        return [out[i:i + 100] for i in range(0, len(out), 100)]

    def run(kiosk: str) -> float:
        work = batches(kiosk)
        t0 = time.perf_counter()
        for b in work:
            store.store(b, "2026-11-01T00:00:00.000Z")
        return events / (time.perf_counter() - t0)

    alone = run("ingest-alone")
    db = Db(url)
    Summarizer(db).run_once()  # the first kiosk's events are folded before the timed run
    # The summariser runs in `kiosk central serve`, another process than the ingest: so here too.
    stop = multiprocessing.Event()
    follower = multiprocessing.Process(target=follow, args=(url, stop), daemon=True)
    follower.start()
    with_summaries = run("ingest-summarised")
    stop.set()
    follower.join(timeout=120)
    lag = Summarizer(db).run_once()
    db.close()
    store.close()
    return {"alone_events_s": round(alone), "with_summaries_events_s": round(with_summaries),
            "ratio": round(with_summaries / alone, 3), "summariser_lag_events_at_end": lag}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wards", type=int, default=100)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--tickets", type=int, default=300)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--ingest", type=int, default=100000)
    args = parser.parse_args()
    name = f"bench_kpi_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(ADMIN, autocommit=True)
    admin.execute(f"CREATE DATABASE {name}")
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    result: dict[str, Any] = {"wards": args.wards, "days": args.days, "tickets_a_day": args.tickets}
    try:
        db = Db(url)
        ensure_schema(db)
        add_user(db, "admin", "admin", [], PASSWORD)
        t0 = time.perf_counter()
        result["events"] = load(url, args.wards, args.days, args.tickets)
        result["load_s"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        folded = Summarizer(db).run_once()
        took = time.perf_counter() - t0
        result["summarise"] = {"events": folded, "seconds": round(took, 1), "events_s": round(folded / took)}
        with db.transaction() as cur:
            cur.run("ANALYZE")
        db.close()
        result["kpi_page"] = asyncio.run(serve_and_measure(url, args.wards, args.days, args.requests))
        result["ingest"] = ingest_rates(url, args.ingest)
    finally:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        admin.close()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
