"""Minimising ID-card data: a per-device keyed hash to recognise a repeat visit, last 4 digits at most.

The key never leaves the device, so a hash cannot be reversed by trying all 12-digit IDs without
it, and hashes from two kiosks cannot be joined.
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
    """Read the device's hashing key, creating it (mode 0600) on first use."""
    try:
        data = path.read_bytes()
        if len(data) >= KEY_BYTES:
            return data[:KEY_BYTES]
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise StorageError(f"cannot read privacy key {path}: {exc.strerror}") from exc
    key = secrets.token_bytes(KEY_BYTES)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
    except FileExistsError:  # another process created it first: use theirs
        return path.read_bytes()[:KEY_BYTES]
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
