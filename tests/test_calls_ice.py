"""ICE host candidates (issue #11 item 6): ``call.host_addresses`` is what the kiosk really offers, and
a change in aioice that would defeat the restriction refuses calls instead of offering every interface."""

from __future__ import annotations

import re

import aioice.ice
import pytest

from agent.calls import rtc
from agent.calls.service import CallService
from agent.calls.signalling import CallTopics
from agent.errors import Refused
from agent.settings import CallSettings
from agent.store.db import Database
from devices.camera import open_source
from devices.capture import SharedCamera
from tests.rtc_broker import AgentTransport, Broker
from tests.test_calls import broker  # noqa: F401  (the broker fixture)

pytestmark = pytest.mark.timeout(60)


def host_candidates(sdp: str) -> set[str]:
    return {m.group(1) for m in re.finditer(r"a=candidate:\S+ \d+ \S+ \d+ (\S+) \d+ typ host", sdp)}


async def offered_hosts(addresses: list[str]) -> set[str]:
    rtc.restrict_host_addresses(addresses)
    camera = SharedCamera(open_source("demo:?fps=15"))
    await camera.start()
    peer = rtc.KioskPeer(rtc.PeerConfig(), camera=camera.subscribe("ice"), microphone=None, speaker=None)
    try:
        return host_candidates(await peer.offer())
    finally:
        await peer.close()
        await camera.stop()
        rtc.restrict_host_addresses([])


async def test_the_offer_carries_only_the_configured_host_addresses() -> None:
    everything = await offered_hosts([])
    assert everything, "aioice's default offers the machine's interfaces"
    assert await offered_hosts(["127.0.0.1"]) == {"127.0.0.1"}


async def test_a_missing_aioice_hook_refuses_calls(monkeypatch: pytest.MonkeyPatch, db: Database,
                                                  broker: Broker) -> None:  # noqa: F811
    monkeypatch.delattr(aioice.ice, "get_host_addresses")
    with pytest.raises(rtc.CallMediaError, match="aioice"):
        rtc.restrict_host_addresses(["127.0.0.1"])
    transport = await AgentTransport(broker.port, client_id="kiosk").connect()
    camera = SharedCamera(open_source("demo:?fps=15"))
    service = CallService(db=db, settings=CallSettings(host_addresses=["127.0.0.1"]),
                          topics=CallTopics("wards", "26734", "k1"), transport=transport, camera=camera)
    try:
        await service.start()  # the daemon keeps running: queue tickets do not depend on calls
        with pytest.raises(Refused) as refused:
            await service.start_call()
        assert refused.value.code == "calls_unsafe_ice"
    finally:
        await service.stop()
        await transport.close()
