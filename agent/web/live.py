"""Live updates for the screens: server-sent events that follow the event log.

Protocol of `GET /api/live` (text/event-stream):

* `snapshot` (first, unless the client resumes): the board state, `id` = the seq it reflects;
* one message per screen-relevant event, named by its type (`ticket.called`, `checkin.rejected` …),
  `id` = its seq, data = the envelope; calls carry `announcement`, the sentence the loudspeaker says;
* `state` after each burst of queue events, once the stream has caught up with the log: the board
  state again, so counts and counters are never computed in the browser.

A client that reconnects sends `Last-Event-ID` (browsers do it themselves) or `?after=SEQ` and
gets every event it missed, in order, then a fresh `state`. A seq the log does not hold (the agent's
database was replaced, or the backlog is too long) gets a `snapshot` instead, so a screen never
shows a stale call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from agent.core import Core
from agent.errors import KioskError
from agent.store import events
from agent.store.events import Event
from agent.store.feed import EventFeed
from agent.voice.phrases import build_callout
from agent.web.guard import client_address
from agent.web.screen_view import board_state, event_data

logger = logging.getLogger(__name__)

KEEPALIVE_S = 15.0
RETRY_MS = 1000
MAX_REPLAY = 1000
CALL_TYPES = ("ticket.called", "ticket.recalled")
RETRY_AFTER_S = 30  # an over-cap screen tries again after this long (EventSource honours the 503 by closing)


class LiveBusy(KioskError):
    code = "live_busy"
    http_status = 503


def announcement(event_type: str, data: dict[str, Any]) -> str | None:
    """The call-out sentence as shown on the board: the announcer builds the same text."""
    try:
        return build_callout(str(data["number"]), int(data["counter"]), recall=event_type == "ticket.recalled").display
    except (KeyError, TypeError, ValueError, KioskError):
        return None


class LiveHub:
    """Builds the board state (cached per seq) and serves the event stream."""

    def __init__(self, core: Core, feed: EventFeed, last_calls: int, max_clients: int = 100,
                 max_per_client: int = 8) -> None:
        self.core = core
        self.max_clients = max_clients
        self.max_per_client = max_per_client
        self.refused = 0
        self._per_client: dict[str, int] = {}
        self.feed = feed
        self.last_calls = last_calls
        self.closing = asyncio.Event()
        self.clients = 0
        self.messages_sent = 0
        self._cache: tuple[int, dict[str, Any]] | None = None

    def last_seq(self) -> int:
        return events.last_seq(self.core.db.conn)

    def state(self) -> dict[str, Any]:
        """The queue as the screens show it, with the seq it reflects."""
        conn = self.core.db.conn
        # One read transaction: the seq and the snapshot describe the same moment even when another
        # process (a CLI call) commits in between.
        conn.execute("BEGIN")
        try:
            seq = events.last_seq(conn)
            if self._cache is not None and self._cache[0] == seq:
                return self._cache[1]
            snap = self.core.queue.snapshot(self.last_calls)
        finally:
            conn.execute("COMMIT")
        for call in snap["last_calls"]:
            call["announcement"] = announcement(call["type"], call)
        state = {"seq": seq, **board_state(snap)}
        self._cache = (seq, state)
        return state

    def envelope(self, event: Event) -> dict[str, Any] | None:
        """The event as screens get it (an allow-list of its data), or None if screens do not get it."""
        data = event_data(event.type, event.data)
        if data is None:
            return None
        settings = self.core.settings.device
        body = {"v": events.ENVELOPE_VERSION, "kiosk": settings.kiosk, "ward": settings.ward, "seq": event.seq,
                "type": event.type, "at": event.at, "data": data}
        if event.type in CALL_TYPES:
            body["announcement"] = announcement(event.type, event.data)
        return body

    def _resume_point(self, request: web.Request) -> int | None:
        raw = request.headers.get("Last-Event-ID") or request.query.get("after")
        if raw is None or not raw.strip().isdigit():
            return None
        after = int(raw)
        last = self.last_seq()
        if after > last or last - after > MAX_REPLAY:
            return None
        oldest = self.core.db.conn.execute("SELECT MIN(seq) FROM events").fetchone()[0]
        if after < last and (oldest is None or oldest > after + 1):
            return None  # pruned: the events in between are gone
        return after

    def _admit(self, client: str) -> None:
        """Every open stream holds a socket: bounded in all and per client, so sockets stay for the rest."""
        mine = self._per_client.get(client, 0)
        if self.clients >= self.max_clients or mine >= self.max_per_client:
            self.refused += 1
            if self.refused == 1 or self.refused % 1000 == 0:  # a flood must not become a flood of log lines
                logger.warning("live stream refused for %s: %d open (cap %d, %d per client); %d refused so far",
                               client, self.clients, self.max_clients, self.max_per_client, self.refused)
            raise LiveBusy("Quá nhiều màn hình đang kết nối. Xin thử lại sau (too many live clients).")
        self._per_client[client] = mine + 1
        self.clients += 1

    def _leave(self, client: str) -> None:
        self.clients -= 1
        left = self._per_client.get(client, 1) - 1
        if left > 0:
            self._per_client[client] = left
        else:
            self._per_client.pop(client, None)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        client = client_address(request)
        self._admit(client)
        try:
            return await self._serve(request)
        finally:
            self._leave(client)

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        })
        await response.prepare(request)
        try:
            await response.write(f"retry: {RETRY_MS}\n\n".encode())
            after = self._resume_point(request)
            if after is None:
                state = self.state()
                await self._send(response, "snapshot", state["seq"], {**state, "now": _now_ms()})
                after = int(state["seq"])
            await self._stream(response, after)
        except ConnectionResetError:
            logger.debug("a live client went away")
        return response

    async def _stream(self, response: web.StreamResponse, after: int) -> None:
        stream = self.feed.follow(after)
        closing = asyncio.ensure_future(self.closing.wait())
        pending: asyncio.Future[Event] | None = None
        try:
            while not self.closing.is_set():
                if pending is None:
                    pending = asyncio.ensure_future(anext(stream))
                waitables: set[asyncio.Future[Any]] = {pending, closing}
                done, _ = await asyncio.wait(waitables, timeout=KEEPALIVE_S,
                                             return_when=asyncio.FIRST_COMPLETED)
                if pending not in done:
                    if not self.closing.is_set():
                        await response.write(b"event: ping\ndata: {}\n\n")  # screens watch for silence
                    continue
                event, pending = pending.result(), None
                body = self.envelope(event)
                if body is not None:
                    await self._send(response, event.type, event.seq, body)
                if event.type.startswith("ticket.") and event.seq >= self.last_seq():
                    await self._send(response, "state", event.seq, {**self.state(), "now": _now_ms()})
        finally:
            closing.cancel()
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await pending
            with contextlib.suppress(RuntimeError):
                await _aclose(stream)

    async def _send(self, response: web.StreamResponse, name: str, seq: int, data: dict[str, Any]) -> None:
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        await response.write(f"id: {seq}\nevent: {name}\ndata: {body}\n\n".encode())
        self.messages_sent += 1

    def close(self) -> None:
        self.closing.set()


async def _aclose(stream: AsyncIterator[Event]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


def _now_ms() -> int:
    return int(time.time() * 1000)
