"""Video calls from the kiosk to an officer: the state machine, signalling and the event log.

States of a call::

    ringing ──accept──▶ connecting ──media up──▶ connected ──hangup/peer lost/max time──▶ ended
       │                    └──answer never came / ICE failed / hangup──────────────────▶ ended
       └──ring timeout──▶ missed (cancel sent; the resident may leave a callback request)

One call at a time (a second ``start_call`` is refused as busy). The first officer to accept wins;
later accepts get ``{"type": "taken"}``. The peer connection and its complete offer are prepared while
the call rings, so an accept is answered with the offer at once.

Events (each in its own write transaction): ``call.requested`` when the call starts ringing,
``call.answered`` when an officer's accept wins, ``call.ended`` (duration, who ended it, why) and
``call.missed`` (no accept within the ring timeout). A callback request left after a missed call is
recorded as ``feedback.submitted`` with ``kind = "callback_request"``.

Losing the broker during a call does not end it: media is peer to peer. A hangup that cannot be
published is logged, and the officer's side notices through the heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from agent.calls import rtc, turn
from agent.calls import signalling as sig
from agent.calls.signalling import CallTopics, Message, SignalError, SignalTransport, Subscription
from agent.clock import Clock, rfc3339, system_clock
from agent.errors import InvalidInput, KioskError, NotFound, Refused, Unauthorized
from agent.settings import CallSettings
from agent.store import events
from agent.store.db import Database
from devices import audio
from devices.capture import SharedCamera

logger = logging.getLogger(__name__)

CallStateName = Literal["ringing", "connecting", "connected", "ended", "missed"]
ACTIVE_STATES = frozenset({"ringing", "connecting", "connected"})
_CALLBACK_WINDOW_S = 600.0  # a callback request is accepted this long after the call was missed


class CallBusy(Refused):
    code = "call_busy"


@dataclass
class Call:
    """One call; ``info()`` is what the API and the CLI show."""

    id: str
    service: str | None
    ticket: str | None
    # The secret the kiosk screen that started the call holds; watching and hanging up need it.
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    state: CallStateName = "ringing"
    officer: str | None = None
    session: str | None = None
    started: float = field(default_factory=time.monotonic)
    answered: float | None = None
    connected: float | None = None
    finished: float | None = None
    ended_by: str | None = None
    reason: str | None = None
    callback_left: bool = False
    peer: rtc.KioskPeer | None = None
    ice_servers: list[rtc.IceServerSpec] = field(default_factory=list, repr=False)
    hangup_requested: asyncio.Future[str] | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def info(self) -> dict[str, Any]:
        now = time.monotonic()
        duration = 0.0
        if self.connected is not None:
            duration = (self.finished or now) - self.connected
        return {
            "call": self.id, "state": self.state, "service": self.service, "ticket": self.ticket,
            "officer": self.officer, "ring_seconds": round((self.answered or self.finished or now) - self.started, 3),
            "duration_seconds": round(duration, 3), "ended_by": self.ended_by, "reason": self.reason,
            "callback_left": self.callback_left,
        }

    def set_state(self, state: CallStateName) -> None:
        self.state = state
        self.changed.set()
        self.changed = asyncio.Event()


def _ice_json(server: rtc.IceServerSpec) -> dict[str, Any]:
    """An RTCIceServer dictionary, as browsers take it."""
    entry: dict[str, Any] = {"urls": list(server.urls)}
    if server.username is not None:
        entry["username"] = server.username
    if server.credential is not None:
        entry["credential"] = server.credential
    return entry


class CallService:
    """Starts and ends the kiosk's calls; one at a time. ``start()``/``stop()`` bracket its life.

    Finished calls are kept only as a bounded history (``HISTORY`` calls, without their media) so
    ``state()`` can still show the last ones and a missed call can take a callback request.
    """

    HISTORY = 16

    def __init__(
        self,
        *,
        db: Database,
        settings: CallSettings,
        topics: CallTopics,
        transport: SignalTransport,
        camera: SharedCamera,
        microphone: audio.AudioSource | None = None,
        speaker: audio.AudioSink | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self.db = db
        self.settings = settings
        self.topics = topics
        self.transport = transport
        self.camera = camera
        self.microphone = microphone
        self.speaker = speaker
        self.clock = clock
        self._calls: dict[str, Call] = {}
        self._current: Call | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = False
        self._ice_fault: str | None = None

    # -- life cycle -----------------------------------------------------------------------------------
    async def start(self) -> None:
        try:
            rtc.restrict_host_addresses(self.settings.host_addresses)
        except rtc.CallMediaError as exc:
            # The rest of the kiosk runs on; calls are refused rather than offering every interface.
            self._ice_fault = exc.message
            logger.error("video calls refused: %s", exc.message)

    async def stop(self) -> None:
        """End the current call (reason ``shutdown``) and wait for its task."""
        self._stopping = True
        current = self._current
        if current is not None and current.state in ACTIVE_STATES:
            self._request_hangup(current, "shutdown")
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> CallService:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- API --------------------------------------------------------------------------------------------
    async def start_call(self, service: str | None = None, ticket: str | None = None) -> str:
        """Ring the officers of the ward; returns the call id. Raises CallBusy when a call is on."""
        if not self.settings.enabled:
            raise Refused("Cuộc gọi video chưa được bật trên ki-ốt này.", code="calls_disabled")
        if self._stopping:
            raise Refused("Ki-ốt đang tắt.", code="shutting_down")
        if self._ice_fault is not None:
            raise Refused("Cuộc gọi video tạm ngừng do lỗi cấu hình mạng của ki-ốt.", code="calls_unsafe_ice")
        if self._current is not None and self._current.state in ACTIVE_STATES:
            raise CallBusy("Đang có một cuộc gọi khác, xin vui lòng chờ.")
        for name, value in (("service", service), ("ticket", ticket)):
            if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 64):
                raise InvalidInput(f"{name} must be a string of 1-64 characters")
        call = Call(id=secrets.token_hex(8), service=service, ticket=ticket)
        call.hangup_requested = asyncio.get_running_loop().create_future()
        # Subscribe before ringing: an accept published right after the ring must not be missed. A
        # failure (broker down) refuses this call and must not leave the line busy for later ones.
        self._current = call  # held during the await: a concurrent start is busy
        try:
            subscription = await self.transport.subscribe(self.topics.officer_topic(call.id))
        except BaseException:
            self._current = None
            raise
        self._calls[call.id] = call
        self._forget_old_calls()
        task = asyncio.get_running_loop().create_task(self._run(call, subscription), name=f"call-{call.id}")
        self._tasks[call.id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(call.id, None))
        return call.id

    async def hangup(self, call_id: str, reason: str = "hangup") -> dict[str, Any]:
        """End a call from the kiosk (the resident pressed hang up); returns its final state."""
        call = self._get(call_id)
        if call.state in ACTIVE_STATES:
            self._request_hangup(call, reason)
            task = self._tasks.get(call_id)
            if task is not None:
                await asyncio.shield(task)
        return call.info()

    def token(self, call_id: str) -> str:
        """The call's secret, for the POST response only (never in ``state()`` or any event)."""
        return self._get(call_id).token

    def check_token(self, call_id: str, token: str | None) -> None:
        """Raise unless ``token`` is the call's secret (compared in constant time)."""
        call = self._get(call_id)
        if not token or not hmac.compare_digest(token.encode(), call.token.encode()):
            raise Unauthorized("Không có quyền với cuộc gọi này.", code="call_token_invalid")

    def registry_size(self) -> int:
        return len(self._calls)

    def _forget_old_calls(self) -> None:
        finished = [c for c in self._calls.values() if c.state not in ACTIVE_STATES]
        for call in finished[: max(0, len(finished) - self.HISTORY)]:
            del self._calls[call.id]

    def state(self, call_id: str | None = None) -> dict[str, Any] | None:
        """One call's state, or the current (last) call's; None when there has been none."""
        if call_id is None:
            return None if self._current is None else self._current.info()
        return self._get(call_id).info()

    def leave_callback(self, call_id: str, *, ticket: str | None = None, service: str | None = None) -> None:
        """After a missed call the resident asks to be called back (by ticket number at the desk).

        No phone number or name is taken: events never hold personal data.
        """
        call = self._get(call_id)
        if call.state != "missed":
            raise Refused("Chỉ để lại yêu cầu gọi lại được sau một cuộc gọi nhỡ.", code="call_not_missed")
        if call.callback_left:
            raise Refused("Yêu cầu gọi lại đã được ghi nhận.", code="callback_exists")
        if call.finished is not None and time.monotonic() - call.finished > _CALLBACK_WINDOW_S:
            raise Refused("Đã quá thời gian để lại yêu cầu gọi lại.", code="callback_expired")
        self._record("feedback.submitted", {
            "kind": "callback_request", "call": call.id, "service": service or call.service,
            "ticket": ticket or call.ticket,
        })
        call.callback_left = True
        call.changed.set()

    def remote_video(self, call_id: str) -> rtc.RemoteVideo:
        """The officer's video of a call, for the kiosk screen (MJPEG)."""
        call = self._get(call_id)
        if call.peer is None:
            raise NotFound("Cuộc gọi chưa có hình ảnh.", code="call_no_video")
        return call.peer.remote_video

    def peer(self, call_id: str) -> rtc.KioskPeer | None:
        return self._get(call_id).peer

    async def wait_for(self, call_id: str, *states: CallStateName, timeout: float | None = None) -> dict[str, Any]:
        """Wait until the call reaches one of ``states`` (or a final state); returns its info."""
        call = self._get(call_id)
        wanted = set(states) | {"ended", "missed"}

        async def until() -> None:
            while call.state not in wanted:
                await call.changed.wait()

        await asyncio.wait_for(until(), timeout)
        return call.info()

    # -- the call ---------------------------------------------------------------------------------------
    def _get(self, call_id: str) -> Call:
        call = self._calls.get(call_id)
        if call is None:
            raise NotFound("Không tìm thấy cuộc gọi.", code="call_not_found")
        return call

    def _request_hangup(self, call: Call, reason: str) -> None:
        if call.hangup_requested is not None and not call.hangup_requested.done():
            call.hangup_requested.set_result(reason)

    def _record(self, type_: str, data: dict[str, Any]) -> None:
        try:
            with self.db.write() as conn:
                events.append(conn, type_, data, self.clock())
        except KioskError:
            logger.exception("could not record %s", type_)

    async def _send(self, call: Call, message: Message) -> bool:
        try:
            await self.transport.publish(self.topics.kiosk_topic(call.id), message)
        except SignalError as exc:
            logger.warning("call %s: could not send %s: %s", call.id, message.get("type"), exc)
            return False
        return True

    async def _run(self, call: Call, subscription: Subscription) -> None:
        inbox: asyncio.Queue[Message] = asyncio.Queue(maxsize=64)
        reader = asyncio.get_running_loop().create_task(self._read(call, subscription, inbox), name="call-signal-in")
        camera = self.camera.subscribe(f"call-{call.id}")
        try:
            # Reads the TURN credential among others: a missing file must end this call, not leave it
            # ringing forever with every later call refused as busy.
            call.ice_servers = self._ice_servers(call)
            peer = rtc.KioskPeer(self._peer_config(call), camera=camera, microphone=self.microphone,
                                 speaker=self.speaker)
        except (KioskError, OSError, ValueError) as exc:  # a missing or unreadable secret, a bad setting
            logger.error("call %s: setup failed: %s", call.id, exc)
            camera.close()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            with contextlib.suppress(Exception):
                await subscription.close()
            await self._end(call, "system", "setup_failed")
            self._forget_old_calls()
            return
        call.peer = peer
        offer = asyncio.get_running_loop().create_task(peer.offer(), name="call-offer")
        try:
            await self._ring(call)
            accepted = await self._wait_accept(call, inbox)
            if accepted:
                await self._connect(call, inbox, offer)
            if call.state == "connected":
                await self._in_call(call, inbox)
        except Exception:  # the top of a call: it must end cleanly, whatever failed
            logger.exception("call %s failed", call.id)
            if call.state in ACTIVE_STATES:
                await self._end(call, "kiosk", "error")
        finally:
            if not offer.done():
                offer.cancel()
            with contextlib.suppress(BaseException):
                await offer
            await peer.close()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            with contextlib.suppress(Exception):
                await subscription.close()
            call.peer = None  # the peer holds the media buffers (~200 kB): free them with the call
            call.changed.set()
            self._forget_old_calls()

    def _ice_servers(self, call: Call) -> list[rtc.IceServerSpec]:
        """This call's ICE servers; a shared-secret TURN server gets credentials that expire when the
        call can last no longer (they reach the officer in the offer, never over HTTP)."""
        s = self.settings
        expiry = int(self.clock().timestamp() + s.ring_timeout_seconds + s.connect_timeout_seconds
                     + s.max_minutes * 60 + 60)
        servers = []
        for i in s.ice_servers:
            secret = i.shared_secret()
            if secret is not None:
                username, password = turn.rest_credentials(secret, call.id, expiry)
                servers.append(rtc.IceServerSpec(list(i.urls), username, password))
            else:
                servers.append(rtc.IceServerSpec(list(i.urls), i.username, i.password()))
        return servers

    def _peer_config(self, call: Call) -> rtc.PeerConfig:
        s = self.settings
        servers = call.ice_servers
        return rtc.PeerConfig(
            ice_servers=servers, relay_only=s.ice_transport_policy == "relay", max_width=s.max_width,
            max_height=s.max_height, max_fps=s.max_fps, heartbeat_interval=s.heartbeat_interval_seconds,
            heartbeat_timeout=s.heartbeat_timeout_seconds,
        )

    async def _read(self, call: Call, subscription: Subscription, inbox: asyncio.Queue[Message]) -> None:
        async for _topic, message in subscription:
            try:
                sig.check_officer_message(message)
            except InvalidInput as exc:
                logger.warning("call %s: ignored officer message: %s", call.id, exc)
                continue
            if message["type"] == sig.ACCEPT and call.state != "ringing":
                await self._refuse_late_accept(call, message)
                continue
            if inbox.full():  # a flooding console must not grow memory; the oldest message goes
                inbox.get_nowait()
            inbox.put_nowait(message)

    async def _refuse_late_accept(self, call: Call, message: Message) -> None:
        if message.get("officer") == call.officer and message.get("session") == call.session:
            return  # QoS 1 may deliver the winner's accept twice
        await self._send(call, {"type": sig.TAKEN, "officer": message.get("officer"),
                                "session": message.get("session")})

    async def _ring(self, call: Call) -> None:
        message: Message = {"type": sig.RING, "call": call.id, "at": rfc3339(self.clock())}
        if call.service:
            message["service"] = call.service
        if call.ticket:
            message["ticket"] = call.ticket
        self._record("call.requested", {"call": call.id, "service": call.service, "ticket": call.ticket})
        if not await self._send(call, message):
            logger.warning("call %s rings nowhere: the broker is unreachable", call.id)

    async def _next(self, call: Call, inbox: asyncio.Queue[Message], timeout: float) -> Message | str | None:
        """The next officer message, the kiosk's hangup reason (str), or None at the timeout."""
        assert call.hangup_requested is not None
        get: asyncio.Future[Any] = asyncio.ensure_future(inbox.get())
        waiting: set[asyncio.Future[Any]] = {get, call.hangup_requested}
        try:
            done, _ = await asyncio.wait(waiting, timeout=max(0.0, timeout),
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not get.done():
                get.cancel()
        if call.hangup_requested.done():
            if get.done() and not get.cancelled():
                inbox.put_nowait(get.result())
            return call.hangup_requested.result()
        if get in done:
            message: Message = get.result()
            return message
        return None

    async def _wait_accept(self, call: Call, inbox: asyncio.Queue[Message]) -> bool:
        deadline = call.started + self.settings.ring_timeout_seconds
        while True:
            item = await self._next(call, inbox, deadline - time.monotonic())
            if item is None:
                await self._missed(call)
                return False
            if isinstance(item, str):
                await self._send(call, {"type": sig.HANGUP, "reason": item})
                await self._end(call, "kiosk", item)
                return False
            if item["type"] == sig.ACCEPT:
                call.officer = item["officer"].strip()
                call.session = item.get("session")
                call.answered = time.monotonic()
                call.set_state("connecting")
                self._record("call.answered", {"call": call.id, "officer": call.officer,
                                               "ring_seconds": round(call.answered - call.started, 3)})
                return True
            # a hangup or an answer before any accept: stale or foreign, ignore it

    async def _missed(self, call: Call) -> None:
        await self._send(call, {"type": sig.CANCEL, "reason": "ring_timeout"})
        call.finished = time.monotonic()
        call.ended_by, call.reason = "kiosk", "ring_timeout"
        self._record("call.missed", {"call": call.id, "service": call.service, "ticket": call.ticket,
                                     "ring_seconds": round(call.finished - call.started, 3),
                                     "callback_offered": True})
        call.set_state("missed")

    async def _connect(self, call: Call, inbox: asyncio.Queue[Message], offer: asyncio.Task[str]) -> None:
        assert call.peer is not None
        deadline = time.monotonic() + self.settings.connect_timeout_seconds
        try:
            sdp = await asyncio.wait_for(asyncio.shield(offer), self.settings.connect_timeout_seconds)
        except (TimeoutError, rtc.CallMediaError) as exc:
            logger.warning("call %s: no offer: %s", call.id, exc)
            await self._send(call, {"type": sig.HANGUP, "reason": "connect_failed"})
            await self._end(call, "kiosk", "connect_failed")
            return
        offer_msg: Message = {"type": sig.OFFER, "sdp": sdp, "officer": call.officer}
        if call.ice_servers:  # to the accepted officer only (not in the ring every console sees)
            offer_msg["iceServers"] = [_ice_json(i) for i in call.ice_servers]
        if call.session is not None:
            offer_msg["session"] = call.session
        await self._send(call, offer_msg)
        while True:
            item = await self._next(call, inbox, deadline - time.monotonic())
            if await self._ended_by(call, item, "kiosk", "connect_failed"):
                return
            assert isinstance(item, dict)
            if item["type"] == sig.ANSWER:
                break
        try:
            await call.peer.accept_answer(item["sdp"])
        except rtc.CallMediaError as exc:
            logger.warning("call %s: %s", call.id, exc)
            await self._send(call, {"type": sig.HANGUP, "reason": "bad_answer"})
            await self._end(call, "kiosk", "bad_answer")
            return
        assert call.hangup_requested is not None
        connected: asyncio.Future[Any] = asyncio.ensure_future(call.peer.connected.wait())
        waiting: set[asyncio.Future[Any]] = {connected, call.peer.ended, call.hangup_requested}
        try:
            await asyncio.wait(waiting, timeout=max(0.0, deadline - time.monotonic()),
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            connected.cancel()
        if call.peer.connected.is_set():
            call.connected = time.monotonic()
            call.set_state("connected")
            return
        reason = "connect_failed"
        by = "kiosk"
        if call.hangup_requested is not None and call.hangup_requested.done():
            reason = call.hangup_requested.result()
        elif call.peer.ended.done():
            reason, by = call.peer.ended.result(), "system"
        await self._send(call, {"type": sig.HANGUP, "reason": reason})
        await self._end(call, by, reason)

    async def _in_call(self, call: Call, inbox: asyncio.Queue[Message]) -> None:
        assert call.peer is not None and call.connected is not None
        limit = call.connected + self.settings.max_minutes * 60
        ended = call.peer.ended
        while True:
            next_msg: asyncio.Future[Any] = asyncio.ensure_future(self._next(call, inbox, limit - time.monotonic()))
            waiting: set[asyncio.Future[Any]] = {next_msg, ended}
            try:
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not next_msg.done():
                    next_msg.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await next_msg
            if ended.done():
                reason = ended.result()
                logger.warning("call %s: media ended: %s", call.id, reason)
                await self._send(call, {"type": sig.HANGUP, "reason": reason})
                await self._end(call, "system", reason)
                return
            if await self._ended_by(call, next_msg.result(), "system", "max_duration"):
                return

    async def _ended_by(self, call: Call, item: Message | str | None, timeout_by: str, timeout_reason: str) -> bool:
        """End the call when `item` says so: None (the wait ran out), a local reason, or the officer's
        hangup. True when the call ended."""
        if item is None or isinstance(item, str):
            reason = timeout_reason if item is None else item
            await self._send(call, {"type": sig.HANGUP, "reason": reason})
            await self._end(call, timeout_by if item is None else "kiosk", reason)
            return True
        if item["type"] == sig.HANGUP:
            await self._end(call, "officer", sig.hangup_reason(item))
            return True
        return False

    async def _end(self, call: Call, by: str, reason: str) -> None:
        if call.state not in ACTIVE_STATES:
            return
        call.finished = time.monotonic()
        call.ended_by, call.reason = by, reason
        duration = 0.0 if call.connected is None else call.finished - call.connected
        self._record("call.ended", {"call": call.id, "officer": call.officer, "by": by, "reason": reason,
                                    "duration_seconds": round(duration, 3),
                                    "connected": call.connected is not None})
        if call.peer is not None:
            await call.peer.close()
        call.set_state("ended")
        logger.info("call %s ended by %s: %s (%.1f s)", call.id, by, reason, duration)
