"""Counter consoles: PIN login gives a session token; wrong PINs are throttled per client and
counter with exponential backoff that survives a restart; the log names the client, never the PIN."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import aiohttp
import pytest

from agent.core import Core
from agent.errors import Unauthorized
from agent.store.feed import EventFeed
from agent.web.auth import FREE_TRIES, CounterAuth, TooManyAttempts
from agent.web.server import WebServer
from tests.test_web_api import web_settings


async def post(http: aiohttp.ClientSession, path: str, body: object, headers: dict[str, str] | None = None
               ) -> tuple[int, dict[str, object], str | None]:
    async with http.post(path, json=body, headers=headers) as res:
        return res.status, json.loads(await res.text()), res.headers.get("Retry-After")


async def test_attacker_lockout_spares_the_officer_and_survives_a_restart(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    settings = web_settings(tmp_path)
    for run in range(2):
        core = Core.open(settings)
        feed = EventFeed(core.db, poll_interval=0.05)
        server = WebServer(core, feed, host="127.0.0.1", port=0)
        await server.start()
        try:
            attacker = aiohttp.ClientSession(server.url, connector=aiohttp.TCPConnector(local_addr=("127.0.0.2", 0)))
            async with attacker, aiohttp.ClientSession(server.url) as officer:
                if run == 0:
                    for _ in range(FREE_TRIES):
                        status, err, _ = await post(attacker, "/api/counters/1/login", {"pin": "1111"})
                        assert (status, err["code"]) == (401, "wrong_pin")
                # Locked now, and still locked after the restart: even the right PIN is refused.
                status, err, retry = await post(attacker, "/api/counters/1/login", {"pin": "4821"})
                assert (status, err["code"]) == (429, "too_many_attempts") and retry is not None and int(retry) > 0
                status, err, _ = await post(attacker, "/api/counters/1/next", {}, {"Authorization": "Bearer 4821"})
                assert status == 429
                # The real officer at another client is not locked out.
                status, login, _ = await post(officer, "/api/counters/1/login", {"pin": "4821", "officer": "Lan"})
                assert status == 200, login
                token = str(login["token"])
                assert len(token) >= 32 and token != "4821" and login["expires_at"]
                bearer = {"Authorization": f"Bearer {token}"}
                status, body, _ = await post(officer, "/api/counters/1/next", {}, bearer)
                assert status == 200, body
                async with officer.get("/api/counters/1", headers=bearer) as res:
                    assert res.status == 200 and (await res.json())["officer"] == "Lan"
                status, err, _ = await post(officer, "/api/counters/2/next", {}, bearer)  # a token is per counter
                assert status == 401
                status, _, _ = await post(officer, "/api/counters/1/logout", {}, bearer)
                assert status == 200
                status, err, _ = await post(officer, "/api/counters/1/next", {}, bearer)
                assert (status, err["code"]) == (401, "wrong_pin")
        finally:
            await server.stop()
            feed.close()
            core.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "agent.web.auth"]
    assert any("127.0.0.2" in line and "counter 1" in line for line in lines)
    assert not any("1111" in line or "4821" in line for line in lines)


def test_backoff_doubles_and_a_success_resets_only_its_own_client(tmp_path: Path) -> None:
    now = [1_000_000.0]
    state = tmp_path / "counter-logins.json"
    auth = CounterAuth({1: "4821"}, state, clock=lambda: now[0])
    for _ in range(FREE_TRIES - 1):
        with pytest.raises(Unauthorized):
            auth.login(1, "0000", "10.0.0.66")
    waits = []
    for _ in range(4):
        with pytest.raises(Unauthorized):
            auth.login(1, "0000", "10.0.0.66")
        with pytest.raises(TooManyAttempts) as locked:
            auth.login(1, "4821", "10.0.0.66")
        waits.append(locked.value.retry_after)
        now[0] += locked.value.retry_after
    assert waits[1] == 2 * waits[0] and waits[2] == 2 * waits[1] and waits[3] == 2 * waits[2]
    session = auth.login(1, "4821", "10.0.0.7")  # another client (the officer) logs in meanwhile
    assert auth.session_counter(session.token) == 1
    # A restart reads the saved state back: the attacker's next wrong PIN doubles the wait again.
    assert auth.dirty
    auth.save(auth.snapshot())  # what the API does after each attempt, off the event loop
    again = CounterAuth({1: "4821"}, state, clock=lambda: now[0])
    with pytest.raises(Unauthorized):
        again.login(1, "0000", "10.0.0.66")
    with pytest.raises(TooManyAttempts) as locked:
        again.login(1, "4821", "10.0.0.66")
    assert locked.value.retry_after == 2 * waits[3]
    assert again.session_counter(session.token) is None  # sessions do not survive a restart
    now[0] += 13 * 3600
    assert auth.session_counter(session.token) is None  # sessions expire
