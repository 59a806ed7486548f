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

from agent.checkin import screen as checkin_screen
from agent.core import Core
from agent.errors import KioskError
from agent.store import events
from agent.store.events import Event
from agent.store.feed import EventFeed
from agent.voice.phrases import build_callout

logger = logging.getLogger(__name__)

KEEPALIVE_S = 15.0
RETRY_MS = 1000
MAX_REPLAY = 1000
CALL_TYPES = ("ticket.called", "ticket.recalled")
# What screens need; ratings and feedback (free text) are not broadcast on the LAN.
SCREEN_PREFIXES = ("ticket.", "checkin.", "call.", "agent.started")


def announcement(event_type: str, data: dict[str, Any]) -> str | None:
    """The call-out sentence as shown on the board: the announcer builds the same text."""
    try:
        return build_callout(str(data["number"]), int(data["counter"]), recall=event_type == "ticket.recalled").display
    except (KeyError, TypeError, ValueError, KioskError):
        return None


class LiveHub:
    """Builds the board state (cached per seq) and serves the event stream."""

    def __init__(self, core: Core, feed: EventFeed, last_calls: int) -> None:
        self.core = core
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
        keep = ("id", "number", "service", "priority", "state", "arrived_at", "counter")
        state = {
            "seq": seq, "day": snap["day"], "services": snap["services"], "counters": snap["counters"],
            "last_calls": snap["last_calls"],
            "waiting": [{k: t[k] for k in keep} for t in snap["waiting"]],
            "held": [{k: t[k] for k in keep} for t in snap["held"]],
        }
        self._cache = (seq, state)
        return state

    def envelope(self, event: Event) -> dict[str, Any]:
        settings = self.core.settings.device
        body = event.envelope(settings.ward, settings.kiosk)
        body["data"] = checkin_screen.for_screen(event.type, event.data)  # no booking/dossier codes on the LAN
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

    async def handle(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        })
        await response.prepare(request)
        self.clients += 1
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
        finally:
            self.clients -= 1
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
                if event.type.startswith(SCREEN_PREFIXES):
                    await self._send(response, event.type, event.seq, self.envelope(event))
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
