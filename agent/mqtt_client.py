"""The one module that imports paho-mqtt: an asyncio MQTT client with reconnects and PUBACK futures.

paho runs inside the event loop (its socket is watched with `add_reader`/`add_writer` and its
housekeeping runs from a timer), so every paho callback already runs on the loop thread and no
paho object is shared between threads. Only the blocking TCP/TLS connect runs in a worker thread;
the socket is registered with the loop after it returns. Each connection uses a fresh paho client,
so nothing queued for a dead connection is replayed behind the caller's back: the outbox decides
what to (re)send.

Liveness: paho pings after `keepalive` s without inbound bytes but only gives up after another
`keepalive`; our watchdog drops the link when nothing was read for 1.5 x keepalive (a silently
dead path, e.g. a NAT that forgets the flow, is noticed within that bound).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from agent.errors import KioskError

logger = logging.getLogger(__name__)

MessageHandler = Callable[["Message"], None]
ConnectHook = Callable[[], None]


class MqttError(KioskError):
    code = "mqtt_error"
    http_status = 503


class NotConnected(MqttError):
    code = "mqtt_not_connected"


class PublishFailed(MqttError):
    code = "mqtt_publish_failed"


class ConnectRefused(MqttError):
    code = "mqtt_connect_refused"


def redact_url(url: str) -> str:
    """The URL without user name or password, for logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True)
class MqttOptions:
    url: str
    client_id: str
    protocol: Literal["5", "3.1.1"] = "5"
    keepalive: int = 30
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    will: Will | None = None
    inflight: int = 100
    reconnect_min: float = 0.25
    reconnect_max: float = 30.0
    connect_timeout: float = 10.0
    publish_timeout: float = 15.0

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme in ("mqtts", "ssl")

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (8883 if self.tls else 1883)

    def credentials(self) -> tuple[str | None, str | None]:
        """Explicit settings win over user:password in the URL."""
        parts = urlsplit(self.url)
        return self.username or parts.username, self.password or parts.password


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    response_topic: str | None = None
    correlation_data: bytes | None = None


def _match_pattern(topic: str) -> str:
    """Messages of a shared subscription `$share/{group}/{filter}` carry topics matching `{filter}`."""
    if topic.startswith("$share/"):
        return topic.split("/", 2)[2] if topic.count("/") >= 2 else topic
    return topic


def _log_refusal(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        logger.warning("subscription failed: %s", fut.exception())


def backoff_delay(attempt: int, low: float, high: float) -> float:
    """Exponential backoff with jitter: a fleet does not reconnect in lockstep after an outage."""
    base = min(high, low * (2 ** min(attempt, 30)))
    return random.uniform(base / 2, base)  # jitter only, not cryptography


@dataclass
class _Link:
    """One connection: its paho client, socket and outstanding PUBACKs."""

    client: paho.Client
    generation: int
    sock: Any = None
    connack: asyncio.Future[bool] | None = None
    pending: dict[int, asyncio.Future[None]] = field(default_factory=dict)
    subacks: dict[int, asyncio.Future[None]] = field(default_factory=dict)
    deadlines: deque[tuple[float, int]] = field(default_factory=deque)
    last_read: float = field(default_factory=time.monotonic)
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str = ""


class MqttClient:
    """Connects, keeps reconnecting, resubscribes, and turns PUBACKs into awaited futures."""

    def __init__(self, options: MqttOptions, on_message: MessageHandler | None = None) -> None:
        self.options = options
        self._handlers: list[tuple[str, MessageHandler]] = []
        if on_message is not None:
            self._handlers.append(("#", on_message))
        self._subscriptions: dict[str, int] = {}
        self._on_connect: list[ConnectHook] = []
        self._before_disconnect: list[Callable[[], asyncio.Future[None] | None]] = []
        self._link: _Link | None = None
        self._generation = 0
        self._connected = asyncio.Event()
        self.connects = 0
        self.last_error = ""
        self.connect_failed = asyncio.Event()  # set on each failed attempt, for one-shot tools
        self.session_present = False

    # Registration (before or during run) -----------------------------------------------------
    def subscribe(self, topic: str, handler: MessageHandler, qos: int = 1) -> None:
        """Subscribe now and after every reconnect; `handler` gets messages whose topic matches."""
        self._subscriptions[topic] = qos
        self._handlers.append((_match_pattern(topic), handler))
        link = self._link
        if link is not None and self._connected.is_set():
            self._send_subscribe(link, {topic: qos})

    async def subscribe_acked(self, topic: str, handler: MessageHandler, qos: int = 1,
                              timeout: float = 10.0) -> None:
        """Subscribe (also after every reconnect) and return once the broker granted it (SUBACK)."""
        link = self._link
        if link is None or not self._connected.is_set():
            raise NotConnected("not connected to the broker")
        self._subscriptions[topic] = qos
        self._handlers.append((topic, handler))
        fut = self._send_subscribe(link, {topic: qos})
        try:
            async with asyncio.timeout(timeout):
                await fut
        except TimeoutError as exc:
            self.unsubscribe(topic, handler)
            raise PublishFailed(f"no SUBACK within {timeout:g} s") from exc
        except MqttError:
            self.unsubscribe(topic, handler)
            raise

    def unsubscribe(self, topic: str, handler: MessageHandler) -> None:
        """Stop delivering `topic` to `handler`; the broker subscription ends with its last handler."""
        with contextlib.suppress(ValueError):
            self._handlers.remove((topic, handler))
        if any(t == topic for t, _ in self._handlers):
            return
        self._subscriptions.pop(topic, None)
        link = self._link
        if link is not None and self._connected.is_set():
            link.client.unsubscribe(topic)

    def on_connect(self, hook: ConnectHook) -> None:
        self._on_connect.append(hook)

    def before_disconnect(self, hook: Callable[[], asyncio.Future[None] | None]) -> None:
        """Called on a clean stop while still connected (e.g. publish a retained offline status)."""
        self._before_disconnect.append(hook)

    # State -------------------------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    @property
    def generation(self) -> int:
        """Changes on every new connection; a session's work stops when it changes."""
        return self._generation if self._connected.is_set() else -1

    async def wait_connected(self, stop: asyncio.Event) -> int | None:
        """The generation of the live connection, or None when `stop` was set first."""
        while not stop.is_set():
            if self._connected.is_set():
                return self._generation
            waiters = [asyncio.ensure_future(self._connected.wait()), asyncio.ensure_future(stop.wait())]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()
        return None

    async def wait_lost(self, generation: int) -> None:
        link = self._link
        if link is None or link.generation != generation:
            return
        await link.lost.wait()

    # Publishing --------------------------------------------------------------------------------
    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False,
                properties: dict[str, Any] | None = None) -> asyncio.Future[None]:
        """Hand one message to the broker; the future ends on PUBACK (QoS 1) or when written (QoS 0).

        It fails with NotConnected, PublishFailed (a refused PUBACK, e.g. not authorised) or
        PublishFailed on timeout; a timeout also drops the connection, which is then not trusted.
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        link = self._link
        if link is None or not self._connected.is_set():
            fut.set_exception(NotConnected("not connected to the broker"))
            return fut
        props = None
        if properties and self.options.protocol == "5":
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            for name, value in properties.items():
                setattr(props, name, value)
        info = link.client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            fut.set_exception(PublishFailed(f"publish refused locally: {paho.error_string(info.rc)}"))
            return fut
        link.pending[info.mid] = fut
        if qos > 0:
            # One deadline per message, checked by the housekeeping tick (cheaper than a timer each).
            link.deadlines.append((time.monotonic() + self.options.publish_timeout, info.mid))
        return fut

    def _check_deadlines(self, link: _Link) -> None:
        now = time.monotonic()
        while link.deadlines and link.deadlines[0][0] <= now:
            _, mid = link.deadlines.popleft()
            fut = link.pending.get(mid)
            if fut is not None and not fut.done():
                fut.set_exception(PublishFailed(f"no PUBACK within {self.options.publish_timeout:g} s"))
                self._drop(link, "PUBACK timeout")
                return

    # The connection supervisor ----------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Connect and reconnect (exponential backoff with jitter) until `stop` is set."""
        attempt = 0
        misc = asyncio.create_task(self._housekeeping(stop))
        try:
            while not stop.is_set():
                try:
                    link = await self._connect()
                except (OSError, ssl.SSLError, TimeoutError, MqttError) as exc:
                    self.last_error = str(exc) or type(exc).__name__
                    self.connect_failed.set()
                    delay = backoff_delay(attempt, self.options.reconnect_min, self.options.reconnect_max)
                    attempt += 1
                    logger.warning("MQTT connect to %s failed (%s); retrying in %.1f s",
                                   redact_url(self.options.url), self.last_error, delay)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), delay)
                    continue
                attempt = 0
                stopping = asyncio.ensure_future(stop.wait())
                lost = asyncio.ensure_future(link.lost.wait())
                try:
                    await asyncio.wait([stopping, lost], return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stopping.cancel()
                    lost.cancel()
                if stop.is_set() and not link.lost.is_set():
                    await self._clean_disconnect(link)
                    break
                logger.warning("MQTT connection lost: %s", link.reason)
                self.last_error = link.reason
                # A first quick retry, then the backoff if the broker is still away.
                delay = backoff_delay(0, self.options.reconnect_min, self.options.reconnect_max)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        finally:
            misc.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await misc
            if self._link is not None:
                self._drop(self._link, "stopped")

    async def _connect(self) -> _Link:
        opts = self.options
        loop = asyncio.get_running_loop()
        self._generation += 1
        client = self._new_client()
        link = _Link(client=client, generation=self._generation)
        link.connack = loop.create_future()
        self._install_callbacks(link)
        self._link = link
        clean: Any = True if opts.protocol == "5" else paho.MQTT_CLEAN_START_FIRST_ONLY
        try:
            await asyncio.wait_for(asyncio.to_thread(client.connect, opts.host, opts.port, opts.keepalive,
                                                     clean_start=clean), opts.connect_timeout)
            sock: Any = client.socket()
            if sock is None:
                raise NotConnected("the connection closed during CONNECT")
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            link.sock = sock
            link.last_read = time.monotonic()
            loop.add_reader(sock, self._readable, link)
            if client.want_write():
                loop.add_writer(sock, self._writable, link)
            await asyncio.wait_for(asyncio.shield(link.connack), opts.connect_timeout)
        except BaseException:
            self._drop(link, "connect failed")
            raise
        self.session_present = bool(link.connack.result())
        self.connects += 1
        self.last_error = ""
        self._connected.set()
        logger.info("MQTT connected to %s (MQTT %s, connection %d)", redact_url(opts.url), opts.protocol,
                    self.connects)
        if self._subscriptions:
            self._send_subscribe(link, dict(self._subscriptions))
        for hook in list(self._on_connect):
            try:
                hook()
            except Exception:  # one hook's bug must not stop the connection
                logger.exception("MQTT on-connect hook failed")
        return link

    def _new_client(self) -> paho.Client:
        opts = self.options
        version = MQTTProtocolVersion.MQTTv5 if opts.protocol == "5" else MQTTProtocolVersion.MQTTv311
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=opts.client_id, protocol=version,
                             reconnect_on_failure=False)
        client.max_inflight_messages_set(max(1, opts.inflight))
        client.max_queued_messages_set(max(1, opts.inflight) * 2)
        user, password = opts.credentials()
        if user is not None:
            client.username_pw_set(user, password)
        if opts.tls:
            client.tls_set(ca_certs=str(opts.ca_file) if opts.ca_file else None,
                           certfile=str(opts.cert_file) if opts.cert_file else None,
                           keyfile=str(opts.key_file) if opts.key_file else None,
                           cert_reqs=ssl.CERT_REQUIRED)
        if opts.will is not None:
            client.will_set(opts.will.topic, opts.will.payload, qos=opts.will.qos, retain=opts.will.retain)
        return client

    # paho callbacks (all on the loop thread, except socket ones during the threaded connect) ----
    def _install_callbacks(self, link: _Link) -> None:
        client = link.client

        def on_connect(_c: paho.Client, _u: Any, flags: Any, reason: ReasonCode, _p: Any) -> None:
            if link.connack is None or link.connack.done():
                return
            if reason.is_failure:
                link.connack.set_exception(ConnectRefused(f"broker refused the connection: {reason}"))
            else:
                link.connack.set_result(bool(getattr(flags, "session_present", False)))

        def on_disconnect(_c: paho.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
            self._drop(link, f"disconnected ({reason})")

        def on_publish(_c: paho.Client, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
            fut = link.pending.pop(mid, None)
            if fut is None or fut.done():
                return
            if reason.is_failure:
                fut.set_exception(PublishFailed(f"the broker refused the message: {reason}"))
            else:
                fut.set_result(None)

        def on_subscribe(_c: paho.Client, _u: Any, mid: int, reasons: list[ReasonCode], _p: Any) -> None:
            fut = link.subacks.pop(mid, None)
            if fut is None or fut.done():
                return
            refused = [r for r in reasons if r.is_failure]
            if refused:
                fut.set_exception(PublishFailed(f"the broker refused the subscription: {refused[0]}"))
                fut.exception()
            else:
                fut.set_result(None)

        def on_message(_c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
            props = getattr(msg, "properties", None)
            corr = getattr(props, "CorrelationData", None) if props is not None else None
            message = Message(topic=msg.topic, payload=bytes(msg.payload), qos=msg.qos, retain=bool(msg.retain),
                              response_topic=getattr(props, "ResponseTopic", None) if props is not None else None,
                              correlation_data=bytes(corr) if corr is not None else None)
            for pattern, handler in list(self._handlers):
                if paho.topic_matches_sub(pattern, msg.topic):
                    try:
                        handler(message)
                    except Exception:  # a handler's bug must not kill the network loop
                        logger.exception("MQTT message handler failed for %s", msg.topic)

        def on_socket_register_write(_c: paho.Client, _u: Any, sock: Any) -> None:
            if link.sock is not None and link is self._link:
                asyncio.get_running_loop().add_writer(sock, self._writable, link)

        def on_socket_unregister_write(_c: paho.Client, _u: Any, sock: Any) -> None:
            if link.sock is not None:
                asyncio.get_running_loop().remove_writer(sock)

        def on_socket_close(_c: paho.Client, _u: Any, _sock: Any) -> None:
            if link.sock is not None:
                self._drop(link, link.reason or "socket closed")

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_publish = on_publish
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        client.on_socket_register_write = on_socket_register_write
        client.on_socket_unregister_write = on_socket_unregister_write
        client.on_socket_close = on_socket_close

    def _readable(self, link: _Link) -> None:
        link.last_read = time.monotonic()
        link.client.loop_read(max_packets=64)
        sock = link.sock
        # TLS may hold decrypted bytes the kernel no longer reports as readable.
        while isinstance(sock, ssl.SSLSocket) and link.sock is not None and sock.pending() > 0:
            link.client.loop_read(max_packets=64)

    def _writable(self, link: _Link) -> None:
        link.client.loop_write()

    async def _housekeeping(self, stop: asyncio.Event) -> None:
        """paho's keepalive pings, and our 1.5 x keepalive watchdog."""
        tick = min(1.0, self.options.keepalive / 8)
        while not stop.is_set():
            await asyncio.sleep(tick)
            link = self._link
            if link is None or link.sock is None or not self._connected.is_set():
                continue
            link.client.loop_misc()
            self._check_deadlines(link)
            silent = time.monotonic() - link.last_read
            if link.sock is not None and silent > 1.5 * self.options.keepalive:
                self._drop(link, f"nothing received for {silent:.1f} s (keepalive {self.options.keepalive} s)")

    def _send_subscribe(self, link: _Link, topics: dict[str, int]) -> asyncio.Future[None]:
        """Send SUBSCRIBE; the future ends with the SUBACK (fails if any topic was refused)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.options.protocol == "5":
            rc, mid = link.client.subscribe([(t, SubscribeOptions(qos=q)) for t, q in topics.items()])
        else:
            rc, mid = link.client.subscribe(list(topics.items()))
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            fut.set_exception(NotConnected(f"subscribe refused locally: {paho.error_string(rc)}"))
            fut.exception()
        else:
            link.subacks[mid] = fut
        fut.add_done_callback(_log_refusal)
        return fut

    def _drop(self, link: _Link, reason: str) -> None:
        """Forget a connection: unwatch and close its socket, fail its pending publishes."""
        if link.lost.is_set():
            return
        link.reason = link.reason or reason
        sock, link.sock = link.sock, None
        if sock is not None:
            with contextlib.suppress(Exception):  # the loop may be closing; the socket may be gone
                loop = asyncio.get_running_loop()
                loop.remove_reader(sock)
                loop.remove_writer(sock)
            with contextlib.suppress(OSError):
                sock.close()
        if link.connack is not None and not link.connack.done():
            link.connack.set_exception(NotConnected(f"connection lost before CONNACK: {reason}"))
            link.connack.exception()  # retrieved: _connect re-raises via wait_for
        for fut in [*link.pending.values(), *link.subacks.values()]:
            if not fut.done():
                fut.set_exception(NotConnected(f"connection lost: {reason}"))
                fut.exception()  # retrieved here: an awaiting caller still gets it
        link.pending.clear()
        link.subacks.clear()
        link.lost.set()
        if link is self._link:
            self._connected.clear()

    async def _clean_disconnect(self, link: _Link) -> None:
        for hook in list(self._before_disconnect):
            try:
                fut = hook()
                if fut is not None:
                    await asyncio.wait_for(fut, 2.0)
            except (MqttError, TimeoutError) as exc:
                logger.warning("MQTT pre-disconnect publish failed: %s", exc)
        link.client.disconnect()
        if link.sock is not None:
            link.client.loop_write()
        self._drop(link, "stopped")
