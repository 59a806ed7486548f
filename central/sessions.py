"""Logins: password check with a rate limit per client and per user, sessions kept server-side.

The cookie holds a random token; the database keeps only its SHA-256, so a copy of the database
cannot be replayed as a login. Each session has its own CSRF token, required on every POST.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from central.db import Cursor, Db
from central.errors import Throttled, Unauthorized
from central.passwords import verify_password
from central.users import MAX_PASSWORD, User, _user, get_user

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    window: timedelta = timedelta(minutes=15)
    per_user: int = 5  # failures in a window before the account's logins pause
    per_client: int = 20  # failures from one address (many names tried)
    session: timedelta = timedelta(hours=12)


@dataclass(frozen=True)
class Session:
    token: str
    csrf: str
    user: User


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="microseconds")


class Logins:
    def __init__(self, db: Db, limits: Limits | None = None) -> None:
        self.db = db
        self.limits = limits or Limits()

    def _failures(self, cur: Cursor, key: str, now: datetime) -> int:
        row = cur.first("SELECT window_start, failures FROM central_login_failures WHERE key = ?", (key,))
        if row is None or str(row[0]) < _iso(now - self.limits.window):
            return 0
        return int(row[1])

    def _fail(self, cur: Cursor, key: str, now: datetime) -> None:
        if self._failures(cur, key, now) == 0:
            cur.run("INSERT INTO central_login_failures (key, window_start, failures) VALUES (?, ?, 1) "
                    "ON CONFLICT (key) DO UPDATE SET window_start = excluded.window_start, failures = 1",
                    (key, _iso(now)))
        else:
            cur.run("UPDATE central_login_failures SET failures = failures + 1 WHERE key = ?", (key,))

    def login(self, name: str, password: str, client: str) -> Session:
        """A new session, or Unauthorized (wrong name or password) / Throttled (too many failures)."""
        now = _now()
        user_key, client_key = f"user:{name[:64]}", f"client:{client[:64]}"
        with self.db.transaction() as cur:
            if (self._failures(cur, user_key, now) >= self.limits.per_user
                    or self._failures(cur, client_key, now) >= self.limits.per_client):
                raise Throttled("Đăng nhập sai quá nhiều lần. Vui lòng thử lại sau 15 phút.")
        found = get_user(self.db, name) if len(password) <= MAX_PASSWORD else None
        ok = verify_password(found[1] if found else None, password[:MAX_PASSWORD])
        if not ok or found is None:
            with self.db.transaction() as cur:  # committed: the refusal is raised after the transaction
                self._fail(cur, user_key, now)
                self._fail(cur, client_key, now)
            logger.info("login refused (client %s)", client)
            raise Unauthorized("Tên đăng nhập hoặc mật khẩu không đúng.")
        with self.db.transaction() as cur:
            cur.run("DELETE FROM central_login_failures WHERE key = ?", (user_key,))
            token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
            cur.run("INSERT INTO central_sessions (token_hash, name, csrf, created_at, expires_at) "
                    "VALUES (?, ?, ?, ?, ?)", (_digest(token), name, csrf, _iso(now), _iso(now + self.limits.session)))
            cur.run("DELETE FROM central_sessions WHERE expires_at < ?", (_iso(now),))
        logger.info("login of %s", name)
        return Session(token, csrf, found[0])

    def session(self, token: str | None) -> Session | None:
        """The live session of a cookie's token, or None (unknown, forged or expired)."""
        if not token or len(token) > 128:
            return None
        row = self.db.one(
            "SELECT u.name, u.role, u.wards, s.csrf FROM central_sessions s JOIN central_users u ON u.name = s.name "
            "WHERE s.token_hash = ? AND s.expires_at > ?", (_digest(token), _iso(_now())))
        return Session(token, str(row[3]), _user(row)) if row else None

    def logout(self, token: str) -> None:
        with self.db.transaction() as cur:
            cur.run("DELETE FROM central_sessions WHERE token_hash = ?", (_digest(token),))


def csrf_ok(session: Session, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(session.csrf, given or "")
