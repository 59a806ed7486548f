"""The live stream against a LAN attacker: only what the screens show, a bounded number of streams,
and a log that stays small when something repeats."""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from agent.logrepeat import RepeatFilter
from agent.store import events
from tests.test_web_api import PIN, Agent, read_sse, running_agent, web_settings


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[Agent]:
    async with running_agent(web_settings(tmp_path, live_max_clients=5, live_max_per_client=3)) as running:
        yield running


async def test_live_stream_sends_screens_only_what_they_show(agent: Agent) -> None:
    queue = agent.core.queue
    dossier = queue.take("khai-sinh", source="dossier", extra={"dossier": "HS-DOSSIER-4711"})
    async with agent.http.get("/api/live") as res:
        [(name, _, snap)] = await read_sse(res, 1)
        assert name == "snapshot"
        booked = queue.take("khai-sinh", source="appointment", extra={"booking": "BK-SECRET-0815"})
        queue.next(1)
        with agent.core.db.write() as conn:
            now = queue.clock()
            events.append(conn, "checkin.rejected", {"kind": "booking", "code": "booking_expired",
                                                     "message": "Lịch hẹn đã hết hạn.", "booking": "BK-OLD-99"}, now)
            events.append(conn, "checkin.accepted", {"kind": "id_card", "code": "identified",
                                                     "resident_ref": "REF-KEYED-HASH", "repeat": True,
                                                     "suggested_priority": "cao-tuoi", "message": "Xin chào!"}, now)
            events.append(conn, "call.requested", {"call": "CALL-ID-SECRET", "service": "khai-sinh",
                                                   "ticket": booked.ticket.id}, now)
            events.append(conn, "call.missed", {"call": "CALL-ID-SECRET", "service": None, "ticket": None,
                                                "ring_seconds": 30.0, "callback_offered": True}, now)
        got = []
        while not got or got[-1][0] != "call.missed":
            got += await read_sse(res, 1)
    names = [n for n, _, _ in got]
    assert names[0] == "ticket.issued" and "ticket.called" in names
    by_name = {n: d for n, _, d in got}
    assert by_name["ticket.issued"]["data"] == {"number": "A002", "service": "khai-sinh", "priority": None}
    assert by_name["ticket.called"]["data"]["counter"] == 1 and by_name["ticket.called"]["announcement"]
    assert by_name["checkin.rejected"]["data"] == {"kind": "booking", "code": "booking_expired",
                                                   "message": "Lịch hẹn đã hết hạn."}
    assert by_name["checkin.accepted"]["data"]["suggested_priority"] == "cao-tuoi"
    assert by_name["call.requested"]["data"] == {"state": "requested"}
    assert by_name["call.missed"]["data"] == {"state": "missed", "callback_offered": True}
    stream = json.dumps([snap, *[d for _, _, d in got]])
    for secret in ("HS-DOSSIER-4711", "BK-SECRET-0815", "BK-OLD-99", "REF-KEYED-HASH", "CALL-ID-SECRET",
                   dossier.ticket.id, booked.ticket.id, '"id"'):
        assert secret not in stream, secret  # ticket ids are the rating keys: never broadcast
    _, board = await agent.call("GET", "/api/queue")
    assert booked.ticket.id not in json.dumps(board), board
    assert board["counters"][0]["ticket"]["number"] == "A001"
    status, mine = await agent.call("GET", "/api/counters/1", headers=PIN)  # the officer's console still has ids
    assert status == 200 and mine["ticket"]["id"] == dossier.ticket.id


async def test_live_clients_are_capped_and_the_rest_still_answers(agent: Agent,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(3):  # live_max_per_client
            res = await stack.enter_async_context(agent.http.get("/api/live"))
            assert res.status == 200
            await read_sse(res, 1)
        for _ in range(20):
            async with agent.http.get("/api/live") as res:
                assert res.status == 503 and int(res.headers["Retry-After"]) >= 1
                assert (await res.json())["code"] == "live_busy"
        other = await stack.enter_async_context(
            aiohttp.ClientSession(agent.server.url, connector=aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))))
        for _ in range(2):  # 5 = live_max_clients in all
            res = await stack.enter_async_context(other.get("/api/live"))
            assert res.status == 200
        async with other.get("/api/live") as res:
            assert res.status == 503
        status, health = await agent.call("GET", "/healthz")
        assert status == 200 and health["status"] == "ok"
        status, _ = await agent.call("POST", "/api/tickets", {"service": "khai-sinh"})
        assert status == 201
        _, metrics = await agent.call("GET", "/metrics")
        assert "kiosk_live_clients 5" in metrics
    for _ in range(500):  # the server cancels a stream's handler when its client goes: wait for that
        _, metrics = await agent.call("GET", "/metrics")
        if "kiosk_live_clients 0" in metrics:
            break
    async with agent.http.get("/api/live") as res:  # closed streams free their places
        assert res.status == 200
    assert len(caplog.records) < 10  # 21 refusals do not write 21 log lines


def test_repeated_log_lines_are_suppressed_and_counted() -> None:
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler = Collect()
    now = [0.0]
    handler.addFilter(RepeatFilter(burst=3, window_s=60.0, clock=lambda: now[0]))
    log = logging.getLogger("test.repeat")
    log.propagate = False
    log.addHandler(handler)
    try:
        for i in range(10_000):
            log.error("accept failed: %s", f"errno 24 #{i}")
        log.warning("something else")
        now[0] = 61.0
        log.error("accept failed: %s", "errno 24 again")
    finally:
        log.removeHandler(handler)
    assert len(records) == 5
    assert records[3] == "something else"
    assert records[4].startswith("accept failed: errno 24 again") and "9997" in records[4]


def test_the_cli_logs_through_the_repeat_filter() -> None:
    script = ("import logging\nfrom agent.cli.main import _root\n_root(None, False)\n"
              "for i in range(10_000):\n    logging.getLogger('agent.web').error('accept failed: %d', i)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parent.parent)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert 1 <= len(lines) <= 5 and all("accept failed" in line for line in lines)
