"""The local web API against a LAN attacker: screen-only resident actions, JSON and same origin,
Host checks against DNS rebinding, per-client rates, rating by ticket id, bounded JSON.

A "LAN client" connects from 127.0.0.2: a real other source address, not in `web.screen_addresses`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.test_web_api import PIN, Agent, running_agent, web_settings

SCREEN_TOKEN = "s3cr3t-screen-token-0123456789abcdef"


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[Agent]:
    token_file = tmp_path / "screen-token"
    token_file.write_text(SCREEN_TOKEN + "\n", encoding="utf-8")
    async with running_agent(web_settings(tmp_path, screen_token_file=str(token_file), resident_burst=4,
                                          resident_per_minute=1)) as running:
        yield running


def lan_session(agent: Agent) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(agent.server.url, connector=aiohttp.TCPConnector(local_addr=("127.0.0.2", 0)))


async def call(http: aiohttp.ClientSession, method: str, path: str, body: Any = None,
               headers: dict[str, str] | None = None, data: bytes | None = None) -> tuple[int, Any, Any]:
    async with http.request(method, path, json=body if data is None else None, data=data, headers=headers) as res:
        text = await res.text()
        return res.status, (json.loads(text) if res.content_type == "application/json" else text), res.headers


async def test_resident_actions_only_from_the_kiosk_screen(agent: Agent) -> None:
    served = agent.events()
    async with lan_session(agent) as lan:
        for path, body in [("/api/tickets", {"service": "khai-sinh"}), ("/api/feedback", {"text": "Phản ánh thử"}),
                           ("/api/tickets/x/rating", {"score": 5})]:
            status, err, _ = await call(lan, "POST", path, body)
            assert (status, err["code"]) == (403, "screen_only"), path
        assert agent.events() == served  # nothing written
        status, err, _ = await call(lan, "POST", "/api/tickets", {"service": "khai-sinh"},
                                    {"X-Screen-Token": "wrong"})
        assert (status, err["code"]) == (403, "screen_only")
        status, ticket, _ = await call(lan, "POST", "/api/tickets", {"service": "khai-sinh"},
                                       {"X-Screen-Token": SCREEN_TOKEN})
        assert status == 201 and ticket["number"] == "A001"
        for path in ("/api/queue", "/api/services", "/healthz", "/board"):  # the board and reads still work
            status, _, _ = await call(lan, "GET", path)
            assert status == 200, path
        status, _, _ = await call(lan, "POST", "/api/counters/1/next", {}, PIN)  # officers log in from anywhere
        assert status == 200


async def test_resident_actions_need_json_and_same_origin(agent: Agent) -> None:
    before = agent.last_seq()
    raw = json.dumps({"service": "khai-sinh"}).encode()
    for ctype in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"Content-Type": ctype} if ctype else {}
        status, err, _ = await call(agent.http, "POST", "/api/tickets", data=raw, headers=headers)
        assert (status, err["code"]) == (415, "unsupported_media_type"), ctype
    status, err, _ = await call(agent.http, "POST", "/api/tickets", {"service": "khai-sinh"},
                                {"Origin": "http://evil.example"})
    assert (status, err["code"]) == (403, "cross_origin")
    # DNS rebinding: the attacker's name resolves to the kiosk, so the browser sends its own Host.
    for method, path in [("POST", "/api/tickets"), ("GET", "/api/queue")]:
        status, err, _ = await call(agent.http, method, path, {"service": "khai-sinh"},
                                    {"Host": "evil.example:8080"})
        assert (status, err["code"]) == (403, "bad_host"), path
    assert agent.last_seq() == before
    status, _, _ = await call(agent.http, "POST", "/api/tickets", {"service": "khai-sinh"},
                              {"Host": f"localhost:{agent.server.port}",
                               "Origin": f"http://localhost:{agent.server.port}"})
    assert status == 201


async def test_screen_cannot_choose_appointment_priority(agent: Agent) -> None:
    status, err, _ = await call(agent.http, "POST", "/api/tickets", {"service": "khai-sinh", "priority": "hen-truoc"})
    assert (status, err["code"]) == (422, "priority_not_offered")
    assert agent.events("ticket.issued") == []
    status, ticket, _ = await call(agent.http, "POST", "/api/tickets", {"service": "khai-sinh", "priority": "tre-em"})
    assert status == 201 and ticket["priority"] == "tre-em"


async def test_resident_actions_are_rate_limited_per_client(agent: Agent) -> None:
    for _ in range(4):  # resident_burst
        status, _, _ = await call(agent.http, "POST", "/api/tickets", {"service": "khai-sinh"})
        assert status == 201
    status, err, headers = await call(agent.http, "POST", "/api/tickets", {"service": "khai-sinh"})
    assert (status, err["code"]) == (429, "rate_limited") and int(headers["Retry-After"]) >= 1
    assert len(agent.events("ticket.issued")) == 4
    async with lan_session(agent) as lan:  # another client has its own bucket
        status, _, _ = await call(lan, "POST", "/api/tickets", {"service": "khai-sinh"},
                                  {"X-Screen-Token": SCREEN_TOKEN})
        assert status == 201


async def test_rating_by_ticket_id_only(agent: Agent) -> None:
    status, ticket, _ = await call(agent.http, "POST", "/api/tickets", {"service": "khai-sinh"})
    for action in ("next", "start", "done"):
        await call(agent.http, "POST", f"/api/counters/1/{action}", {}, PIN)
    status, err, _ = await call(agent.http, "POST", f"/api/tickets/{ticket['number']}/rating", {"score": 5})
    assert (status, err["code"]) == (404, "rate_by_id")
    assert agent.events("rating.submitted") == []
    status, rating, _ = await call(agent.http, "POST", f"/api/tickets/{ticket['id']}/rating", {"score": 5})
    assert status == 201 and rating["ticket"] == ticket["id"]


async def test_deeply_nested_json_is_a_clear_400(agent: Agent) -> None:
    before = agent.last_seq()
    deep = b'{"service": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    status, err, _ = await call(agent.http, "POST", "/api/tickets", data=deep,
                                headers={"Content-Type": "application/json"})
    assert status == 400 and err["code"] == "bad_json" and "JSON" in err["error"]
    status, err, _ = await call(agent.http, "POST", "/api/counters/1/transfer", data=deep,
                                headers={**PIN, "Content-Type": "application/json"})
    assert status == 400 and err["code"] == "bad_json"
    status, err, _ = await call(agent.http, "POST", "/api/tickets", data=b"{" + b" " * 20_000 + b"}",
                                headers={"Content-Type": "application/json"})
    assert (status, err["code"]) == (413, "body_too_large")
    assert agent.last_seq() == before
