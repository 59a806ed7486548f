"""An officer console without a browser: the aiortc officer used by tests, the bench and technicians.

It speaks the same signalling as ``agent/calls/officer/officer.js``: watch the ward's rings, accept,
wait for the kiosk's offer addressed to this session, answer with a complete SDP, hang up.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
from dataclasses import dataclass, field

from agent.calls import rtc
from agent.calls import signalling as sig
from agent.calls.signalling import Message, SignalTransport, Subscription
from devices import audio

logger = logging.getLogger(__name__)


@dataclass
class Ring:
    kiosk: str
    call: str
    message: Message


@dataclass
class OfficerCall:
    """One accepted call as the officer sees it; ``messages`` gets every later kiosk message."""

    kiosk: str
    call: str
    peer: rtc.OfficerPeer
    messages: asyncio.Queue[Message] = field(default_factory=lambda: asyncio.Queue(maxsize=100))


class AiortcOfficer:
    """Watches ``{root}/{ward}/+/rtc/+/kiosk`` and answers calls with an aiortc peer."""

    def __init__(
        self,
        transport: SignalTransport,
        *,
        root: str,
        ward: str,
        name: str,
        config: rtc.PeerConfig | None = None,
        microphone: audio.AudioSource | None = None,
        speaker: audio.AudioSink | None = None,
    ) -> None:
        self.transport = transport
        self.root = root
        self.ward = ward
        self.name = name
        self.session = secrets.token_hex(6)
        self.config = config or rtc.PeerConfig()
        self.microphone = microphone
        self.speaker = speaker
        self.rings: asyncio.Queue[Ring] = asyncio.Queue(maxsize=100)
        self.seen: list[Message] = []  # every kiosk message, in order (tests inspect it)
        self._per_call: dict[str, asyncio.Queue[Message]] = {}
        self._subscription: Subscription | None = None
        self._reader: asyncio.Task[None] | None = None
        self._calls: list[OfficerCall] = []

    async def start(self) -> None:
        self._subscription = await self.transport.subscribe(sig.ward_ring_filter(self.root, self.ward))
        self._reader = asyncio.get_running_loop().create_task(self._read(self._subscription), name="officer-read")

    async def close(self) -> None:
        for call in self._calls:
            await call.peer.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._subscription is not None:
            await self._subscription.close()

    async def _read(self, subscription: Subscription) -> None:
        async for topic, message in subscription:
            parsed = sig.parse_call_topic(topic)
            if parsed is None:
                continue
            _root, _ward, kiosk, call, _side = parsed
            self.seen.append(message)
            queue = self._per_call.setdefault(call, asyncio.Queue(maxsize=100))
            if not queue.full():
                queue.put_nowait(message)
            if message.get("type") == sig.RING and not self.rings.full():
                self.rings.put_nowait(Ring(kiosk, call, message))

    async def next_ring(self, timeout: float = 10.0) -> Ring:
        return await asyncio.wait_for(self.rings.get(), timeout)

    def _topic(self, kiosk: str, call: str) -> str:
        return f"{self.root}/{self.ward}/{kiosk}/rtc/{call}/officer"

    async def accept(self, ring: Ring, timeout: float = 10.0) -> OfficerCall | None:
        """Accept a ring; returns the connected-to-be call, or None when another officer took it."""
        queue = self._per_call.setdefault(ring.call, asyncio.Queue(maxsize=100))
        await self.transport.publish(self._topic(ring.kiosk, ring.call),
                                     {"type": sig.ACCEPT, "officer": self.name, "session": self.session})

        async def offer_for_me() -> Message | None:
            while True:
                message = await queue.get()
                kind = message.get("type")
                if kind == sig.OFFER:
                    mine = message.get("session") == self.session or (
                        message.get("session") is None and message.get("officer") == self.name)
                    if mine:
                        return message
                    # someone else's offer: the kiosk answers our accept with "taken"
                if kind == sig.TAKEN and message.get("session") == self.session:
                    return None
                if kind in (sig.CANCEL, sig.HANGUP):
                    return None

        offer = await asyncio.wait_for(offer_for_me(), timeout)
        if offer is None:
            return None
        config = self.config
        servers = offer.get("iceServers")
        if isinstance(servers, list) and servers:  # the call's TURN credentials come with the offer
            config = dataclasses.replace(config, ice_servers=[
                rtc.IceServerSpec(list(i.get("urls", [])), i.get("username"), i.get("credential"))
                for i in servers if isinstance(i, dict)])
        peer = rtc.OfficerPeer(config, microphone=self.microphone, speaker=self.speaker)
        officer_call = OfficerCall(ring.kiosk, ring.call, peer, queue)
        self._calls.append(officer_call)
        answer = await peer.answer(str(offer["sdp"]))
        await self.transport.publish(self._topic(ring.kiosk, ring.call), {"type": sig.ANSWER, "sdp": answer})
        return officer_call

    async def hangup(self, call: OfficerCall, reason: str = "hangup") -> None:
        await self.transport.publish(self._topic(call.kiosk, call.call), {"type": sig.HANGUP, "reason": reason})
        await call.peer.close()
