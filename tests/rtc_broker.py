"""Test helpers for calls: a real mosquitto on 127.0.0.1 and a tiny paho adapter to SignalTransport.

The agent's own MQTT client lives in agent/mqtt_client.py; this adapter exists so the call tests
need nothing but the Protocol in agent.calls.signalling.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.calls.signalling import Message, SignalError

MOSQUITTO = "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """mosquitto with a TCP listener and a WebSockets listener, both on 127.0.0.1 only."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.ws_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Broker:
        conf = self.directory / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"listener {self.ws_port} 127.0.0.1\nprotocol websockets\n"
            "persistence false\n",
            encoding="utf-8",
        )
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("mosquitto did not start") from None
                time.sleep(0.02)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    stop = kill


class _Subscription:
    def __init__(self, transport: PahoTransport, topic_filter: str, maxlen: int = 256) -> None:
        self.topic_filter = topic_filter
        self._transport = transport
        self._items: collections.deque[tuple[str, Message]] = collections.deque(maxlen=maxlen)
        self._wake = asyncio.Event()
        self._closed = False
        self.dropped = 0

    def _push(self, topic: str, message: Message) -> None:
        if len(self._items) == self._items.maxlen:
            self.dropped += 1
        self._items.append((topic, message))
        self._wake.set()

    async def __aiter__(self) -> AsyncIterator[tuple[str, Message]]:
        while not self._closed:
            while self._items:
                yield self._items.popleft()
            self._wake.clear()
            await self._wake.wait()

    async def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._transport._drop(self)


class PahoTransport:
    """SignalTransport over paho-mqtt: QoS 1, waits for PUBACK/SUBACK, re-subscribes on reconnect."""

    def __init__(self, port: int, *, client_id: str, timeout: float = 3.0) -> None:
        self.port = port
        self.timeout = timeout
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                   protocol=mqtt.MQTTProtocolVersion.MQTTv311)
        self._client.reconnect_delay_set(0.1, 1)
        self._client.on_connect = self._on_connect
        self._client.on_publish = self._on_publish
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._pending: dict[int, asyncio.Future[None]] = {}
        self._done_early: set[int] = set()
        self._subs: list[_Subscription] = []
        self._connected: asyncio.Future[None] | None = None

    async def connect(self) -> PahoTransport:
        self._loop = asyncio.get_running_loop()
        self._connected = self._loop.create_future()
        self._client.connect_async("127.0.0.1", self.port, keepalive=5)
        self._client.loop_start()
        await asyncio.wait_for(asyncio.shield(self._connected), self.timeout)
        return self

    async def close(self) -> None:
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)

    # paho thread ---------------------------------------------------------------------------------------
    def _call(self, fn: Any, *args: Any) -> None:
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(fn, *args)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            return
        for sub in list(self._subs):
            client.subscribe(sub.topic_filter, qos=1)
        self._call(self._set_connected)

    def _set_connected(self) -> None:
        if self._connected is not None and not self._connected.done():
            self._connected.set_result(None)

    def _ack(self, mid: int) -> None:
        with self._lock:
            fut = self._pending.pop(mid, None)
            if fut is None:
                self._done_early.add(mid)
                return
        self._call(lambda: fut.done() or fut.set_result(None))

    def _on_publish(self, _c: Any, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
        self._ack(mid)

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
        self._ack(mid)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            message = json.loads(msg.payload)
        except ValueError:
            return
        if isinstance(message, dict):
            self._call(self._dispatch, msg.topic, message)

    def _dispatch(self, topic: str, message: Message) -> None:
        for sub in self._subs:
            if mqtt.topic_matches_sub(sub.topic_filter, topic):
                sub._push(topic, message)

    def _drop(self, sub: _Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
            if not any(s.topic_filter == sub.topic_filter for s in self._subs):
                self._client.unsubscribe(sub.topic_filter)

    # event loop ----------------------------------------------------------------------------------------
    async def _wait_ack(self, rc: int, mid: int | None, what: str) -> None:
        if rc != mqtt.MQTT_ERR_SUCCESS or mid is None:
            raise SignalError(f"{what}: not connected (rc {rc})")
        assert self._loop is not None
        fut: asyncio.Future[None] = self._loop.create_future()
        with self._lock:
            if mid in self._done_early:
                self._done_early.discard(mid)
                return
            self._pending[mid] = fut
        try:
            await asyncio.wait_for(fut, self.timeout)
        except TimeoutError as exc:
            raise SignalError(f"{what}: no acknowledgement in {self.timeout} s") from exc
        finally:
            with self._lock:
                self._pending.pop(mid, None)

    async def publish(self, topic: str, payload: Message) -> None:
        info = self._client.publish(topic, json.dumps(payload), qos=1)
        await self._wait_ack(info.rc, info.mid, f"publish {topic}")

    async def subscribe(self, topic_filter: str) -> _Subscription:
        sub = _Subscription(self, topic_filter)
        self._subs.append(sub)
        rc, mid = self._client.subscribe(topic_filter, qos=1)
        await self._wait_ack(rc, mid, f"subscribe {topic_filter}")
        return sub
