"""argon2id password hashes (argon2-cffi's adapter: the only module that imports it)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()
# Verified against when the user does not exist, so a wrong name costs as long as a wrong password.
_DUMMY = _HASHER.hash("not a password of anyone")


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(stored or _DUMMY, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False
