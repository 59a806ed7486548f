"""Call API security (issue #10 item 5): per-call tokens on the call routes, finished calls freed.

A real CallService on a real mosquitto, served by aiohttp on 127.0.0.1; no officer answers, so the
calls ring until the test hangs them up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from agent.calls.web import call_routes
from agent.store.db import Database
from tests.rtc_broker import Broker
from tests.test_calls import Rig, broker  # noqa: F401  (the broker fixture)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def served(db: Database, broker: Broker, tmp_path: Path) -> AsyncIterator[tuple[Rig, str]]:  # noqa: F811
    rig = Rig(db, broker, tmp_path)
    service = await rig.start()
    app = web.Application()
    app.router.add_routes(call_routes(service))
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield rig, f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
        await rig.close()


async def test_a_client_without_the_token_cannot_watch_or_hang_up(served: tuple[Rig, str]) -> None:
    rig, base = served
    assert rig.service is not None
    async with aiohttp.ClientSession() as kiosk, aiohttp.ClientSession() as stranger:
        async with kiosk.post(f"{base}/api/calls", json={}) as resp:
            assert resp.status == 201
            started = await resp.json()
        call_id, token = started["call"], started["token"]
        assert len(token) >= 32
        # The state others may read never carries the token.
        async with stranger.get(f"{base}/api/calls/{call_id}") as resp:
            assert "token" not in await resp.json()
        for method, path in (("DELETE", ""), ("GET", "/video.mjpeg"), ("POST", "/callback")):
            for suffix in ("", "?token=wrong"):
                async with stranger.request(method, f"{base}/api/calls/{call_id}{path}{suffix}") as resp:
                    assert resp.status in (401, 403, 404), (method, path, resp.status)
        assert rig.service.state(call_id)["state"] == "ringing"  # type: ignore[index]
        async with kiosk.delete(f"{base}/api/calls/{call_id}", headers={"X-Call-Token": token}) as resp:
            assert resp.status == 200
            assert (await resp.json())["state"] == "ended"


async def test_finished_calls_are_freed(served: tuple[Rig, str]) -> None:
    rig, _base = served
    service = rig.service
    assert service is not None
    for _ in range(400):
        call_id = await service.start_call()
        await service.hangup(call_id, "cancelled")
    assert service.registry_size() <= service.HISTORY
    assert service.state(call_id)["state"] == "ended"  # type: ignore[index]  # the last calls stay visible


async def test_a_call_whose_setup_fails_ends_with_a_reason_and_frees_the_line(
        db: Database, broker: Broker, tmp_path: Path) -> None:  # noqa: F811
    from agent.settings import IceServer
    turn = IceServer(urls=["turn:127.0.0.1:3478"], username="kiosk", credential_file=tmp_path / "missing-turn")
    rig = Rig(db, broker, tmp_path, ice_servers=[turn])
    try:
        service = await rig.start()
        for _ in range(2):  # the second call is not refused as busy
            call_id = await service.start_call()
            info = await service.wait_for(call_id, "ended", timeout=10)
            assert info["state"] == "ended" and info["reason"] == "setup_failed", info
        assert [e.data["reason"] for e in rig.events("call.ended")] == ["setup_failed", "setup_failed"]
    finally:
        await rig.close()
