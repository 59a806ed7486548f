"""Counter consoles: PIN login → session token, and a per-client throttle on wrong PINs.

A 4-digit PIN is guessable on the LAN without a throttle. The throttle is kept per client address
and counter, so an attacker's wrong PINs never lock the real officer out, and the officer's success
does not reset the attacker's count. Typos cost nothing; the `FREE_TRIES`-th wrong PIN locks that
client out of that counter for `BASE_LOCK_S`, each further one doubles the wait, up to `MAX_LOCK_S`.
The counts live in a small JSON file in the data directory, so a restart does not clear them.

A correct PIN at `POST /api/counters/N/login` gives a random session token (256 bits) that the
console sends as `Authorization: Bearer …` until it expires (`web.counter_session_minutes`) or the
officer logs out. Sessions live in memory: after a restart officers log in again. The configured
secret itself is still accepted as a bearer (scripts, long tokens), through the same throttle.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.errors import KioskError, Unauthorized

logger = logging.getLogger(__name__)

FREE_TRIES = 5
BASE_LOCK_S = 30.0
MAX_LOCK_S = 3600.0
FORGET_S = 24 * 3600.0  # a client's record is dropped a day after its last wrong PIN
MAX_RECORDS = 10_000
MAX_FAILURES = FREE_TRIES  # wrong PINs answered 401 before the first lock


class TooManyAttempts(KioskError):
    code = "too_many_attempts"
    http_status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Session:
    token: str
    counter: int
    expires_at: float  # unix seconds


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class CounterAuth:
    def __init__(self, pins: dict[int, str], state_path: Path | None = None, session_minutes: int = 720,
                 clock: Callable[[], float] = time.time) -> None:
        self._pins = dict(pins)
        self._path = state_path
        self._session_s = session_minutes * 60.0
        self._clock = clock  # wall clock: lock-outs are persisted and must mean the same after a restart
        self._sessions: dict[str, Session] = {}  # sha256(token) → session
        self._throttle: dict[str, dict[str, float]] = self._load()  # "client|counter" → failures, until, last
        self.failures_total = 0
        self.dirty = False

    # Persistence -----------------------------------------------------------------------------------
    def _load(self) -> dict[str, dict[str, float]]:
        if self._path is None or not self._path.exists():
            return {}
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            logger.warning("counter login state %s unreadable (%s); starting afresh", self._path, exc)
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): {f: float(v[f]) for f in ("failures", "until", "last")}
                for k, v in data.items() if isinstance(v, dict) and {"failures", "until", "last"} <= v.keys()}

    def snapshot(self) -> dict[str, dict[str, float]]:
        """A copy of the throttle state for `save` (taken on the event loop, written off it)."""
        self.dirty = False
        return {k: dict(v) for k, v in self._throttle.items()}

    def save(self, state: dict[str, dict[str, float]]) -> None:
        if self._path is None:
            return
        tmp = self._path.with_name(self._path.name + ".tmp")
        tmp.write_text(json.dumps(state), encoding="utf-8")
        os.replace(tmp, self._path)  # a crash leaves the old file or the new one, never half of one

    # Checks ----------------------------------------------------------------------------------------
    def login(self, counter: int, pin: str | None, client: str) -> Session:
        self._check_pin(counter, pin, client)
        now = self._clock()
        self._sessions = {k: s for k, s in self._sessions.items() if s.expires_at > now}
        token = secrets.token_urlsafe(32)
        session = Session(token, counter, now + self._session_s)
        self._sessions[_digest(token)] = session
        logger.info("counter %d: login from %s", counter, client)
        return session

    def logout(self, token: str | None) -> None:
        if token:
            self._sessions.pop(_digest(token), None)

    def session_counter(self, token: str | None) -> int | None:
        if not token:
            return None
        session = self._sessions.get(_digest(token))
        if session is None or session.expires_at <= self._clock():
            return None
        return session.counter

    def check(self, counter: int, presented: str | None, client: str) -> None:
        """Raise Unauthorized / TooManyAttempts unless `presented` is a session of this counter or its PIN."""
        self._expected(counter)
        if self.session_counter(presented) == counter:
            return
        self._check_pin(counter, presented, client)

    async def authorise(self, counter: int, presented: str | None, client: str) -> None:
        """`check`, then keep the throttle across restarts (the small file is written off the loop)."""
        try:
            self.check(counter, presented, client)
        finally:
            await self.save_if_dirty()

    async def save_if_dirty(self) -> None:
        if self.dirty:
            await asyncio.to_thread(self.save, self.snapshot())

    def _expected(self, counter: int) -> str:
        expected = self._pins.get(counter)
        if not expected:
            raise Unauthorized(f"Quầy {counter} chưa được cấp mã PIN (web.counter_pins).", code="counter_locked")
        return expected

    def _check_pin(self, counter: int, presented: str | None, client: str) -> None:
        expected = self._expected(counter)
        key = f"{client}|{counter}"
        now = self._clock()
        record = self._throttle.get(key)
        if record is not None and now - record["last"] > FORGET_S:
            record = None
            self._throttle.pop(key, None)
        if record is not None and record["until"] > now:
            wait = int(record["until"] - now + 0.999)
            raise TooManyAttempts(f"Nhập sai mã PIN quá nhiều lần. Thử lại sau {wait} giây.", wait)
        if presented is not None and hmac.compare_digest(presented.encode(), expected.encode()):
            if record is not None:
                self._throttle.pop(key, None)  # this client's count only
                self.dirty = True
            return
        failures = (record["failures"] if record else 0) + 1
        lock = 0.0 if failures < FREE_TRIES else min(MAX_LOCK_S, BASE_LOCK_S * 2 ** (failures - FREE_TRIES))
        self._throttle[key] = {"failures": failures, "until": now + lock, "last": now}
        while len(self._throttle) > MAX_RECORDS:
            self._throttle.pop(next(iter(self._throttle)))
        self.failures_total += 1
        self.dirty = True
        logger.warning("wrong PIN for counter %d from %s (%d failures; locked for %d s)",
                       counter, client, int(failures), int(lock))
        raise Unauthorized("Mã PIN của quầy không đúng.", code="wrong_pin")


def presented_pin(authorization: str | None, header_pin: str | None) -> str | None:
    """`Authorization: Bearer <token>` or `X-Counter-Pin: <pin>`."""
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return header_pin.strip() if header_pin else None

