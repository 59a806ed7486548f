"""Minimising ID-card data: a per-device keyed hash to recognise a repeat visit, last 4 digits at most.

The key never leaves the device and lives outside the data folder (a systemd credential), so a
copy of the data folder cannot be reversed by trying all 12-digit IDs; the hash itself stays on the
device (check-in rows, ticket link) and is never put in an event, so neither central nor a screen
sees it. The last 4 digits are shown on screen from memory and never written.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from agent.errors import StorageError

KEY_BYTES = 32


def load_or_create_key(path: Path) -> bytes:
    """Read the device's hashing key, creating it (mode 0600, fsynced) on first use.

    A short or empty file is refused rather than used: a key of a few bytes makes the HMAC as
    reversible as a plain hash (all 10^12 ID numbers can be tried)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return _create_key(path)
    except OSError as exc:
        raise StorageError(f"cannot read privacy key {path}: {exc.strerror}") from exc
    if len(data) < KEY_BYTES:
        raise StorageError(f"privacy key {path} is too short ({len(data)} bytes, need {KEY_BYTES}): "
                           "replace it with 32 random bytes (head -c 32 /dev/urandom) or remove it to create one")
    return data[:KEY_BYTES]


def _create_key(path: Path) -> bytes:
    key = secrets.token_bytes(KEY_BYTES)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, key)
            os.fsync(fd)  # a power cut must not leave an empty key that a restart would refuse
        finally:
            os.close(fd)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # ... nor lose the directory entry
        finally:
            os.close(dir_fd)
    except FileExistsError:  # another process created it first: use theirs
        return load_or_create_key(path)
    except OSError as exc:
        raise StorageError(f"cannot create privacy key {path}: {exc.strerror}") from exc
    return key


def resident_ref(key: bytes, id_number: str) -> str:
    """A stable pseudonym for one ID number on this device (HMAC-SHA256, 16 bytes, hex)."""
    return hmac.new(key, b"cccd:" + id_number.encode(), hashlib.sha256).hexdigest()[:32]


def mask_id(id_number: str) -> str:
    """Only the last 4 digits: enough for a resident to recognise their card on screen."""
    return "•" * max(0, len(id_number) - 4) + id_number[-4:]


def mask_name(name: str) -> str:
    """'Nguyễn Văn An' → 'N. V. An': shown to the resident at most, never stored."""
    parts = name.split()
    if not parts:
        return ""
    return " ".join([*(p[0] + "." for p in parts[:-1]), parts[-1]])
