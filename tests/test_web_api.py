"""The JSON API and the live stream over real HTTP on 127.0.0.1: contract, refusals, nothing stored wrongly."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agent.core import Core
from agent.settings import Settings, load_settings
from agent.store import events
from agent.store.feed import EventFeed
from agent.web.auth import MAX_FAILURES
from agent.web.server import WebServer
from tests.conftest import CATALOGUE

PIN = {"Authorization": "Bearer 4821"}


def web_settings(tmp_path: Path, **web: Any) -> Settings:
    return load_settings(storage={"data_dir": str(tmp_path / "data")},
                         queue={"enforce_hours": False, "catalogue": str(CATALOGUE)},
                         web={"counter_pins": {1: "4821", 2: "7730"}, **web})


class Agent:
    """The real core, feed and web server on a free port, plus a client session."""

    def __init__(self, core: Core, feed: EventFeed, server: WebServer, http: aiohttp.ClientSession) -> None:
        self.core, self.feed, self.server, self.http = core, feed, server, http

    async def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                   data: bytes | None = None) -> tuple[int, Any]:
        async with self.http.request(method, path, json=body if data is None else None, data=data,
                                     headers=headers) as res:
            text = await res.text()
            return res.status, (json.loads(text) if res.content_type == "application/json" else text)

    def events(self, type_: str | None = None) -> list[events.Event]:
        found = events.since(self.core.db.conn, 0, 100_000)
        return [e for e in found if type_ is None or e.type == type_]

    def last_seq(self) -> int:
        return events.last_seq(self.core.db.conn)


@contextlib.asynccontextmanager
async def running_agent(settings: Settings) -> AsyncIterator[Agent]:
    """The core, the event feed and the web server as the daemon builds them, on a free port."""
    core = Core.open(settings)
    feed = EventFeed(core.db, poll_interval=0.05)
    server = WebServer(core, feed, host="127.0.0.1", port=0)
    await server.start()
    async with aiohttp.ClientSession(server.url) as http:
        yield Agent(core, feed, server, http)
    await server.stop()
    feed.close()
    core.close()


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[Agent]:
    async with running_agent(web_settings(tmp_path)) as running:
        yield running


async def served_ticket(agent: Agent, service: str = "khai-sinh", counter: int = 1) -> dict[str, Any]:
    status, ticket = await agent.call("POST", "/api/tickets", {"service": service})
    assert status == 201
    for action in ("next", "start", "done"):
        status, body = await agent.call("POST", f"/api/counters/{counter}/{action}", {}, PIN)
        assert status == 200, body
    return dict(ticket)


async def test_services_ticket_and_queue(agent: Agent) -> None:
    status, services = await agent.call("GET", "/api/services")
    assert status == 200
    codes = [s["code"] for g in services["groups"] for s in g["services"]]
    assert "khai-sinh" in codes and services["rating"]["levels"] == 5 and len(services["rating"]["labels"]) == 5
    assert all(p["code"] != "hen-truoc" for p in services["priority_classes"])  # not offered on the screen
    status, first = await agent.call("POST", "/api/tickets", {"service": "khai-sinh"})
    assert status == 201 and first["number"] == "A001" and first["ahead"] == 0
    status, second = await agent.call("POST", "/api/tickets", {"service": "khai-sinh", "priority": "cao-tuoi"})
    assert status == 201 and second["number"] == "A002" and second["priority"] == "cao-tuoi"
    assert "estimated_wait_minutes" in second and second["qr"].endswith("/qr.svg")
    status, svg = await agent.call("GET", second["qr"])
    assert status == 200 and "<svg" in svg
    status, queue = await agent.call("GET", "/api/queue")
    waiting = {s["code"]: s["waiting"] for s in queue["services"]}
    assert status == 200 and waiting["khai-sinh"] == 2 and queue["seq"] == agent.last_seq()
    assert {c["number"] for c in queue["counters"]} >= {1, 2, 6}


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"service": "khong-co"}, 404, "unknown_service"),
    ({"service": "khai-sinh", "priority": "vip"}, 404, "unknown_priority"),
    ({"service": "khai-sinh", "extra": 1}, 422, "invalid_input"),
    ({}, 422, "invalid_input"),
    ([1, 2], 422, "bad_json"),
])
async def test_bad_ticket_requests_store_nothing(agent: Agent, body: Any, status: int, code: str) -> None:
    before = agent.last_seq()
    got, err = await agent.call("POST", "/api/tickets", body)
    assert (got, err["code"]) == (status, code) and err["error"]
    assert agent.last_seq() == before


async def test_malformed_json_and_unknown_routes(agent: Agent) -> None:
    status, err = await agent.call("POST", "/api/tickets", data=b"{not json",
                                   headers={"Content-Type": "application/json"})
    assert status == 422 and err["code"] == "bad_json"
    status, err = await agent.call("GET", "/api/nothing")
    assert status == 404 and err["code"] == "not_found"
    status, err = await agent.call("DELETE", "/api/tickets")
    assert status == 405 and err["code"] == "method_not_allowed"
    status, err = await agent.call("POST", "/api/calls", {})
    assert status == 503 and err["code"] == "calls_unavailable" and "cán bộ" in err["error"]


async def test_counter_actions_need_the_counters_pin(agent: Agent) -> None:
    await agent.call("POST", "/api/tickets", {"service": "khai-sinh"})
    before = agent.last_seq()
    for headers, code in [(None, "wrong_pin"), ({"Authorization": "Bearer 7730"}, "wrong_pin"),
                          ({"X-Counter-Pin": "0000"}, "wrong_pin")]:
        status, err = await agent.call("POST", "/api/counters/1/next", {}, headers)
        assert (status, err["code"]) == (401, code)
    status, err = await agent.call("POST", "/api/counters/3/next", {}, PIN)
    assert (status, err["code"]) == (401, "counter_locked")  # counter 3 has no PIN configured
    status, err = await agent.call("POST", "/api/counters/42/next", {}, PIN)
    assert (status, err["code"]) == (404, "unknown_counter")
    status, err = await agent.call("POST", "/api/counters/1/dance", {}, PIN)
    assert (status, err["code"]) == (404, "unknown_action")
    assert agent.last_seq() == before  # nothing was written by any refusal
    status, ok = await agent.call("POST", "/api/counters/1/next", {}, {"X-Counter-Pin": "4821"})
    assert status == 200 and ok["ticket"]["number"] == "A001"
    assert ok["announcement"] == "Mời công dân có số thứ tự A001 đến quầy số 1"


async def test_wrong_pins_lock_the_counter(agent: Agent) -> None:
    for _ in range(MAX_FAILURES):
        status, _err = await agent.call("POST", "/api/counters/2/next", {}, {"Authorization": "Bearer 1111"})
        assert status == 401
    status, err = await agent.call("POST", "/api/counters/2/next", {}, {"Authorization": "Bearer 7730"})
    assert status == 429 and err["code"] == "too_many_attempts"
    status, _ = await agent.call("POST", "/api/counters/1/next", {}, PIN)  # other counters are not affected
    assert status == 200
    _, metrics = await agent.call("GET", "/metrics")
    assert f"kiosk_counter_auth_failures_total {MAX_FAILURES}" in metrics


async def test_every_counter_action(agent: Agent) -> None:
    for _ in range(4):
        await agent.call("POST", "/api/tickets", {"service": "khai-sinh"})
    status, state = await agent.call("GET", "/api/counters/1", headers=PIN)
    assert status == 200 and len(state["waiting"]) == 4 and state["ticket"] is None
    steps: list[tuple[str, Any, str | None]] = [
        ("next", {}, "A001"), ("recall", {}, "A001"), ("start", {}, "A001"), ("done", {}, None),
        ("next", {}, "A002"), ("no-show", {}, None), ("next", {}, "A003"), ("hold", {}, None),
        ("next", {}, "A004"), ("transfer", {"service": "ket-hon"}, None),
        ("call", {"ticket": "A003", "reason": "bổ sung hồ sơ"}, "A003"),
    ]
    for action, body, number in steps:
        status, res = await agent.call("POST", f"/api/counters/1/{action}", body, PIN)
        assert status == 200, (action, res)
        assert (res["ticket"]["number"] if res["ticket"] else None) == number, action
    types = [e.type for e in agent.events()]
    for expected in ("ticket.recalled", "ticket.serving", "ticket.done", "ticket.no_show", "ticket.held",
                     "ticket.transferred"):
        assert expected in types
    called = agent.events("ticket.called")[-1]
    assert called.data["reason"] == "bổ sung hồ sơ" and called.data["out_of_order"] is True
    status, err = await agent.call("POST", "/api/counters/1/call", {"ticket": "A004", "reason": ""}, PIN)
    assert status == 422 and err["code"] == "reason_required"
    status, err = await agent.call("POST", "/api/counters/1/recall", {}, {**PIN, "X-Officer": "x"})
    assert status == 200
    status, err = await agent.call("POST", "/api/counters/2/start", {}, {"Authorization": "Bearer 7730"})
    assert status == 409 and err["code"] == "no_current_ticket"


async def test_rating_once_per_served_ticket(agent: Agent) -> None:
    status, waiting = await agent.call("POST", "/api/tickets", {"service": "khai-sinh"})
    status, err = await agent.call("POST", f"/api/tickets/{waiting['id']}/rating", {"score": 5})
    assert (status, err["code"]) == (409, "not_served")
    await agent.call("POST", "/api/counters/1/next", {}, {**PIN, "X-Officer": "Nguy%E1%BB%85n%20Lan"})
    await agent.call("POST", "/api/counters/1/start", {}, PIN)
    await agent.call("POST", "/api/counters/1/done", {}, PIN)
    before = agent.last_seq()
    for body, code in [({"score": 6}, "bad_score"), ({"score": 0}, "bad_score"), ({"score": "5"}, "invalid_input"),
                       ({"score": 4, "comment": "x" * 501}, "too_long")]:
        status, err = await agent.call("POST", f"/api/tickets/{waiting['id']}/rating", body)
        assert (status, err["code"]) == (422, code), body
    assert agent.last_seq() == before
    status, rating = await agent.call("POST", f"/api/tickets/{waiting['id']}/rating",
                                      {"score": 4, "comment": "Nhanh, chu đáo"})
    assert status == 201 and rating["counter"] == 1 and rating["officer"] == "Nguyễn Lan"
    assert rating["label"] == "Hài lòng"
    status, err = await agent.call("POST", f"/api/tickets/{waiting['id']}/rating", {"score": 1})
    assert (status, err["code"]) == (409, "already_rated")
    [event] = agent.events("rating.submitted")
    assert event.data["score"] == 4 and event.data["ticket"] == waiting["id"] and event.data["officer"] == "Nguyễn Lan"
    rows = agent.core.db.conn.execute("SELECT score, seq, counter FROM ratings").fetchall()
    assert [tuple(r) for r in rows] == [(4, event.seq, 1)]  # row and event written together
    status, err = await agent.call("POST", "/api/tickets/0190a000-0000-7000-8000-000000000000/rating", {"score": 3})
    assert (status, err["code"]) == (404, "unknown_ticket")


async def test_rating_scale_is_configurable(tmp_path: Path) -> None:
    core = Core.open(web_settings(tmp_path, rating_levels=3))
    feed = EventFeed(core.db)
    server = WebServer(core, feed, host="127.0.0.1", port=0)
    await server.start()
    try:
        async with aiohttp.ClientSession(server.url) as http:
            agent = Agent(core, feed, server, http)
            _, services = await agent.call("GET", "/api/services")
            assert services["rating"] == {"levels": 3, "labels": ["Không hài lòng", "Bình thường", "Hài lòng"]}
            ticket = await served_ticket(agent)
            status, err = await agent.call("POST", f"/api/tickets/{ticket['id']}/rating", {"score": 4})
            assert (status, err["code"]) == (422, "bad_score")
            status, ok = await agent.call("POST", f"/api/tickets/{ticket['id']}/rating", {"score": 3})
            assert status == 201 and ok["scale"] == 3 and ok["label"] == "Hài lòng"
    finally:
        await server.stop()
        feed.close()
        core.close()


async def test_feedback_stored_with_phone_kept_out_of_the_event(agent: Agent) -> None:
    text = "<script>alert(1)</script> Đèn đường hẻm 12 bị hỏng & tối"
    status, fb = await agent.call("POST", "/api/feedback", {"kind": "kien-nghi", "text": text, "phone": "0912.345.678"})
    assert status == 201 and fb["text"] == text and fb["has_phone"] is True
    [event] = agent.events("feedback.submitted")
    assert event.data["text"] == text and "0912345678" not in json.dumps(event.data) and "phone" not in event.data
    row = agent.core.db.conn.execute("SELECT kind, text, phone, seq FROM feedback").fetchone()
    assert tuple(row) == ("kien-nghi", text, "0912345678", event.seq)  # stored as typed; screens escape it


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"text": "ngắn"}, 422, "text_required"),
    ({"text": "x" * 2001}, 422, "too_long"),
    ({"text": "Đủ dài rồi", "phone": "12345"}, 422, "bad_phone"),
    ({"text": "Đủ dài rồi", "kind": "khen"}, 422, "bad_kind"),
])
async def test_bad_feedback_stores_nothing(agent: Agent, body: dict[str, Any], status: int, code: str) -> None:
    got, err = await agent.call("POST", "/api/feedback", body)
    assert (got, err["code"]) == (status, code) and err["error"]
    assert agent.last_seq() == 0
    assert agent.core.db.conn.execute("SELECT COUNT(*) FROM feedback").fetchone()[0] == 0


async def test_oversized_body_is_refused(agent: Agent) -> None:
    limit = agent.core.settings.web.max_body_bytes
    status, err = await agent.call("POST", "/api/feedback", {"text": "a" * (limit + 10)})
    assert status == 413 and err["code"] == "body_too_large"
    assert agent.last_seq() == 0


async def test_health_and_metrics(agent: Agent) -> None:
    await agent.call("POST", "/api/tickets", {"service": "ket-hon"})
    status, health = await agent.call("GET", "/healthz")
    assert status == 200 and health["status"] == "ok" and health["seq"] == 1
    status, text = await agent.call("GET", "/metrics")
    assert status == 200
    assert 'kiosk_tickets_waiting{service="ket-hon"} 1' in text
    assert 'kiosk_http_requests_total{method="POST",route="/api/tickets",status="201"} 1' in text
    assert "kiosk_event_last_seq 1" in text
    for line in text.splitlines():  # the Prometheus text format: comments or `name{labels} value`
        assert line.startswith("#") or float(line.rsplit(" ", 1)[1]) >= 0


async def test_pages_and_security_headers(agent: Agent) -> None:
    for path, marker in [("/", "kiosk.js"), ("/board", "board.js"), ("/counter/1", "counter.js")]:
        async with agent.http.get(path) as res:
            body = await res.text()
            assert res.status == 200 and marker in body
            assert "script-src 'self'" in res.headers["Content-Security-Policy"]
            assert "http://" not in body and "https://" not in body  # nothing from the net
    for name in ("app.css", "common.js", "kiosk.js", "board.js", "counter.js"):
        async with agent.http.get(f"/static/{name}") as res:
            body = await res.text()
            assert res.status == 200 and "innerHTML" not in body and "https://" not in body


# --- the live stream ----------------------------------------------------------------------------


async def read_sse(res: aiohttp.ClientResponse, count: int, timeout: float = 5) -> list[tuple[str, int | None, Any]]:
    """The next `count` messages (name, id, data), pings skipped."""
    out: list[tuple[str, int | None, Any]] = []
    name, seq, data = "message", None, ""

    async def run() -> None:
        nonlocal name, seq, data
        while len(out) < count:
            raw = await res.content.readline()
            if not raw:
                raise ConnectionResetError("the stream ended")
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("id: "):
                seq = int(line[4:])
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "":
                if data and name != "ping":
                    out.append((name, seq, json.loads(data)))
                name, seq, data = "message", None, ""

    await asyncio.wait_for(run(), timeout)
    return out


async def test_live_snapshot_then_events_then_state(agent: Agent) -> None:
    await agent.call("POST", "/api/tickets", {"service": "khai-sinh"})
    async with agent.http.get("/api/live") as res:
        assert res.headers["Content-Type"].startswith("text/event-stream")
        [(name, seq, snap)] = await read_sse(res, 1)
        assert name == "snapshot" and seq == 1 and snap["seq"] == 1
        assert {s["code"]: s["waiting"] for s in snap["services"]}["khai-sinh"] == 1
        await agent.call("POST", "/api/counters/1/next", {}, PIN)
        got = await read_sse(res, 2)
        assert [(n, s) for n, s, _ in got] == [("ticket.called", 2), ("state", 2)]
        called = got[0][2]
        assert called["data"]["number"] == "A001" and called["kiosk"] == "demo-01" and called["v"] == 1
        assert called["announcement"] == "Mời công dân có số thứ tự A001 đến quầy số 1"
        state = got[1][2]
        assert state["counters"][0]["ticket"]["number"] == "A001" and state["last_calls"][0]["seq"] == 2


async def test_live_resume_replays_missed_events(agent: Agent) -> None:
    await agent.call("POST", "/api/tickets", {"service": "khai-sinh"})
    await agent.call("POST", "/api/tickets", {"service": "khai-sinh"})
    await agent.call("POST", "/api/counters/1/next", {}, PIN)
    await agent.call("POST", "/api/counters/1/next", {}, PIN)  # A001 no-show, A002 called
    async with agent.http.get("/api/live", headers={"Last-Event-ID": "2"}) as res:
        got = await read_sse(res, 4)
    assert [(n, s) for n, s, _ in got] == [("ticket.called", 3), ("ticket.no_show", 4), ("ticket.called", 5),
                                          ("state", 5)]
    async with agent.http.get("/api/live?after=4") as res:
        assert [(n, s) for n, s, _ in await read_sse(res, 2)] == [("ticket.called", 5), ("state", 5)]
    # A seq this log never had (the agent's database was replaced): a fresh snapshot, not silence.
    async with agent.http.get("/api/live", headers={"Last-Event-ID": "999"}) as res:
        [(name, seq, _)] = await read_sse(res, 1)
        assert (name, seq) == ("snapshot", 5)


async def test_live_streams_end_when_the_server_stops(tmp_path: Path) -> None:
    core = Core.open(web_settings(tmp_path))
    feed = EventFeed(core.db)
    server = WebServer(core, feed, host="127.0.0.1", port=0)
    await server.start()
    async with aiohttp.ClientSession(server.url) as http:
        res = await http.get("/api/live")
        await read_sse(res, 1)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await server.stop()
        assert loop.time() - started < 2.5  # the stream did not hold the shutdown for its timeout
        with pytest.raises((aiohttp.ClientError, ConnectionResetError)):
            await read_sse(res, 1, timeout=2)
        res.close()
    feed.close()
    core.close()


def test_counter_pins_from_a_credentials_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "counter-pins").write_text("# ward counters\n1 = 1111\n3 = abc-token\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    s = load_settings(web={"counter_pins": {1: "9999", 2: "2222"}, "counter_pins_file": "counter-pins"})
    assert s.counter_pins() == {1: "1111", 2: "2222", 3: "abc-token"}
    assert "2222" not in s.model_dump_json()
    monkeypatch.setenv("KIOSK_WEB__COUNTER_PINS", '{"5": "5555"}')
    assert load_settings().counter_pins() == {5: "5555"}
