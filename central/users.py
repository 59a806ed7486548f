"""Central's users and roles.

admin: everything, including users; ops: the fleet and every ward's figures; officer: the wards in its
scope (events and figures of those wards, never fleet commands); leader: KPIs and reports only (of its
wards, or the city when it has none), never an individual resident's events.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, get_args

from central.db import Db
from central.errors import BadInput, NotFound
from central.passwords import hash_password

Role = Literal["admin", "ops", "officer", "leader"]
ROLES: tuple[str, ...] = get_args(Role)
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
WARD = re.compile(r"^\d{5}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024


@dataclass(frozen=True)
class User:
    name: str
    role: str
    wards: tuple[str, ...]  # empty: every ward (admin, ops, a city leader)

    def scope(self) -> list[str] | None:
        """The wards this user may see; None means the whole city."""
        if self.role in ("admin", "ops") or not self.wards:
            return None
        return list(self.wards)

    def sees(self, ward: str) -> bool:
        scope = self.scope()
        return scope is None or ward in scope

    @property
    def sees_events(self) -> bool:  # individual residents' events: never a leader
        return self.role in ("admin", "ops", "officer")

    @property
    def runs_fleet(self) -> bool:
        return self.role in ("admin", "ops")

    def public(self) -> dict[str, object]:
        return {"name": self.name, "role": self.role, "wards": list(self.wards)}


def check_wards(wards: list[str]) -> tuple[str, ...]:
    for ward in wards:
        if not WARD.match(ward):
            raise BadInput(f"ward code {ward!r} is not 5 digits")
    return tuple(sorted(set(wards)))


def read_password(path: Path) -> str:
    try:
        password = path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read the password file {path}: {exc}") from exc
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise BadInput(f"the password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


def _validate(name: str, role: str, wards: tuple[str, ...]) -> None:
    if not NAME.match(name):
        raise BadInput("user name: 1-64 of a-z 0-9 . _ -, starting with a letter or digit")
    if role not in ROLES:
        raise BadInput(f"role must be one of {', '.join(ROLES)}")
    if role == "officer" and not wards:
        raise BadInput("an officer needs --wards (the wards it serves)")
    if role in ("admin", "ops") and wards:
        raise BadInput(f"{role} sees every ward: no --wards")


def add_user(db: Db, name: str, role: str, wards: list[str], password: str) -> User:
    scope = check_wards(wards)
    _validate(name, role, scope)
    digest = hash_password(password)
    with db.transaction() as cur:
        if cur.first("SELECT 1 FROM central_users WHERE name = ?", (name,)):
            raise BadInput(f"user {name} already exists")
        cur.run("INSERT INTO central_users (name, role, wards, hash, created_at) VALUES (?, ?, ?, ?, ?)",
                (name, role, ",".join(scope), digest, datetime.now(UTC).isoformat(timespec="seconds")))
    return User(name, role, scope)


def remove_user(db: Db, name: str) -> None:
    with db.transaction() as cur:
        if not cur.run("DELETE FROM central_users WHERE name = ?", (name,)):
            raise NotFound(f"no user {name}")
        cur.run("DELETE FROM central_sessions WHERE name = ?", (name,))


def set_password(db: Db, name: str, password: str) -> None:
    digest = hash_password(password)
    with db.transaction() as cur:
        if not cur.run("UPDATE central_users SET hash = ? WHERE name = ?", (digest, name)):
            raise NotFound(f"no user {name}")
        cur.run("DELETE FROM central_sessions WHERE name = ?", (name,))  # a new password ends old sessions


def _user(row: tuple[object, ...]) -> User:
    name, role, wards = row[0], row[1], row[2]
    return User(str(name), str(role), tuple(w for w in str(wards).split(",") if w))


def list_users(db: Db) -> list[User]:
    return [_user(r) for r in db.query("SELECT name, role, wards FROM central_users ORDER BY name")]


def get_user(db: Db, name: str) -> tuple[User, str] | None:
    row = db.one("SELECT name, role, wards, hash FROM central_users WHERE name = ?", (name,))
    return (_user(row), str(row[3])) if row else None
