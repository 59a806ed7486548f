"""Call signalling over MQTT, transport-agnostic: topics, message shapes and the transport seam.

The contract is ARCHITECTURE.md "Call signalling": the kiosk publishes on ``.../rtc/{call}/kiosk``,
officers on ``.../rtc/{call}/officer``. aiortc does not trickle ICE, so each SDP is sent complete.

Two optional fields extend the contract without changing it: ``accept`` may carry a ``session``
(a random id of one console tab), and the kiosk's ``offer`` names the winning ``officer`` and
``session``, so every other console learns the call was taken and stops ringing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from agent.errors import InvalidInput, KioskError

logger = logging.getLogger(__name__)

Message = dict[str, Any]

# Message types, by sender.
RING, OFFER, TAKEN, CANCEL = "ring", "offer", "taken", "cancel"  # kiosk
ACCEPT, ANSWER = "accept", "answer"  # officer
HANGUP = "hangup"  # either side
KIOSK_TYPES = frozenset({RING, OFFER, TAKEN, CANCEL, HANGUP})
OFFICER_TYPES = frozenset({ACCEPT, ANSWER, HANGUP})
MAX_SDP_CHARS = 64_000
MAX_NAME_CHARS = 80


class SignalError(KioskError):
    """The signalling transport could not deliver a message (broker down, not connected, timeout)."""

    code = "signal_failed"
    http_status = 503


class Subscription(Protocol):
    """Messages matching one topic filter, as (topic, decoded JSON object), until closed.

    Iterating after ``close()`` (or after the transport shut down) ends the iteration. Messages that
    are not JSON objects are skipped by the transport.
    """

    def __aiter__(self) -> AsyncIterator[tuple[str, Message]]: ...

    async def close(self) -> None: ...


class SignalTransport(Protocol):
    """What the calls need from an MQTT client.

    - ``publish``: QoS 1, not retained, JSON-encoded; returns once the broker acknowledged it (PUBACK)
      and raises :class:`SignalError` when it cannot (not connected, timeout).
    - ``subscribe``: QoS 1; returns once the broker granted it (SUBACK), so nothing published after
      it returns is missed. The subscription must survive a reconnect (subscribe again on connect).
    """

    async def publish(self, topic: str, payload: Message) -> None: ...

    async def subscribe(self, topic_filter: str) -> Subscription: ...


@dataclass(frozen=True, slots=True)
class CallTopics:
    """Topic names of one kiosk's calls."""

    root: str
    ward: str
    kiosk: str

    def kiosk_topic(self, call: str) -> str:
        return f"{self.root}/{self.ward}/{self.kiosk}/rtc/{call}/kiosk"

    def officer_topic(self, call: str) -> str:
        return f"{self.root}/{self.ward}/{self.kiosk}/rtc/{call}/officer"


def ward_ring_filter(root: str, ward: str) -> str:
    """What an officer console subscribes to: every kiosk message of every call in the ward."""
    return f"{root}/{ward}/+/rtc/+/kiosk"


def parse_call_topic(topic: str) -> tuple[str, str, str, str, str] | None:
    """(root, ward, kiosk, call, side) of a signalling topic, or None."""
    parts = topic.split("/")
    if len(parts) != 6 or parts[3] != "rtc" or parts[5] not in ("kiosk", "officer"):
        return None
    return parts[0], parts[1], parts[2], parts[4], parts[5]


def check_officer_message(message: Message) -> Message:
    """Validate a message from an officer console (untrusted input); raises InvalidInput."""
    kind = message.get("type")
    if kind not in OFFICER_TYPES:
        raise InvalidInput(f"unknown officer message type {kind!r}")
    if kind == ACCEPT:
        officer = message.get("officer")
        if not isinstance(officer, str) or not officer.strip() or len(officer) > MAX_NAME_CHARS:
            raise InvalidInput("accept needs an officer name of 1-80 characters")
        session = message.get("session")
        if session is not None and (not isinstance(session, str) or len(session) > MAX_NAME_CHARS):
            raise InvalidInput("accept session must be a short string")
    elif kind == ANSWER:
        sdp = message.get("sdp")
        if not isinstance(sdp, str) or not sdp.startswith("v=0") or len(sdp) > MAX_SDP_CHARS:
            raise InvalidInput("answer needs a complete SDP")
    return message


def hangup_reason(message: Message) -> str:
    """A short, safe reason string from a hangup message."""
    reason = message.get("reason")
    if isinstance(reason, str) and reason.strip():
        return reason.strip()[:MAX_NAME_CHARS]
    return "hangup"
