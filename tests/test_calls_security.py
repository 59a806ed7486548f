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


async def test_turn_credentials_are_per_call_in_the_signalling_not_served_by_http(
        db: Database, broker: Broker, tmp_path: Path) -> None:  # noqa: F811
    import base64
    import hashlib
    import hmac
    import time

    from agent.calls.web import officer_config
    from agent.settings import CallSettings, IceServer, Settings
    from tests.test_calls import KIOSK, WARD
    secret = tmp_path / "turn-secret"
    secret.write_text("ward-turn-shared-secret\n")
    static = tmp_path / "turn-password"
    static.write_text("static-password\n")
    # A TURN server on a closed 127.0.0.1 port: gathering gives up on it at once (port unreachable).
    turn = IceServer(urls=["turn:127.0.0.1:9?transport=udp"], secret_file=secret)
    other = IceServer(urls=["turn:127.0.0.1:9?transport=udp"], username="shared", credential_file=static)
    settings = Settings(device={"ward": WARD, "kiosk": KIOSK}, call=CallSettings(ice_servers=[turn, other]))
    served = officer_config(settings)
    assert "ward-turn" not in str(served) and "static-password" not in str(served)

    rig = Rig(db, broker, tmp_path, ice_servers=[turn, other])
    try:
        service = await rig.start()
        officer = await rig.officer("officer")
        call_id = await service.start_call()
        ring = await officer.next_ring()
        assert "iceServers" not in ring.message  # rings go to every console of the ward
        await officer.accept(ring, timeout=20)
        offer = next(m for m in officer.seen if m.get("type") == "offer")
        first, second = offer["iceServers"]
        expiry, call = first["username"].split(":")
        assert call == call_id and int(expiry) > time.time() + 60
        expected = base64.b64encode(hmac.new(b"ward-turn-shared-secret", first["username"].encode(),
                                             hashlib.sha1).digest()).decode()
        assert first["credential"] == expected
        assert second == {"urls": other.urls, "username": "shared", "credential": "static-password"}
    finally:
        await rig.close()


def test_config_check_reports_a_missing_turn_credential(tmp_path: Path) -> None:
    from agent.ops.config_check import problems
    from agent.settings import CallSettings, IceServer, Settings
    servers = [IceServer(urls=["turn:127.0.0.1:3478"], username="k", credential_file=tmp_path / "none"),
               IceServer(urls=["turn:127.0.0.1:3478"], secret_file=tmp_path / "no-secret")]
    found = problems(Settings(call=CallSettings(ice_servers=servers)))
    turn = [p for p in found if p.startswith("call.ice_servers")]
    assert len(turn) == 2 and "none" in turn[0] and "no-secret" in turn[1], found
