"""Ed25519 release keys: a key id is the sha256 of the raw public key, so rotation is just a new file.

A trust dir holds `<key_id>.pub` (PEM) files; `revoked` lists key ids (one a line) that no longer verify,
even if their .pub file is still there, so revoking is one line appended, not a file hunt.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.errors import KioskError


class ReleaseError(KioskError):
    code = "release_invalid"


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class KeyPair:
    private_path: Path
    public_path: Path
    key_id: str


def keygen(out: Path) -> KeyPair:
    """Write `<id>.key` (0600) and `<id>.pub` into out; the .pub goes into every kiosk's trust dir."""
    out.mkdir(parents=True, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    kid = key_id(private.public_key())
    priv = out / f"{kid}.key"
    pub = out / f"{kid}.pub"
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    fd = os.open(priv, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    pub.write_bytes(private.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo))
    return KeyPair(priv, pub, kid)


def load_private(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ReleaseError(f"cannot read signing key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ReleaseError(f"{path} is not an Ed25519 key")
    return key


class TrustStore:
    """The kiosk's trusted release keys (a dir), minus the revoked ids."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory

    def keys(self) -> dict[str, Ed25519PublicKey]:
        if not self._dir.is_dir():
            raise ReleaseError(f"keys dir {self._dir} does not exist")
        revoked_file = self._dir / "revoked"
        revoked = set()
        if revoked_file.exists():
            revoked = {line.strip() for line in revoked_file.read_text().splitlines() if line.strip()}
        found: dict[str, Ed25519PublicKey] = {}
        for path in sorted(self._dir.glob("*.pub")):
            try:
                key = serialization.load_pem_public_key(path.read_bytes())
            except ValueError:
                continue  # a broken file trusts nothing; verify reports the unknown key id
            if isinstance(key, Ed25519PublicKey) and key_id(key) not in revoked:
                found[key_id(key)] = key
        return found

    def verify(self, kid: str, signature: bytes, message: bytes) -> None:
        key = self.keys().get(kid)
        if key is None:
            raise ReleaseError(f"key {kid} is not trusted (unknown or revoked)", "release_key_untrusted")
        try:
            key.verify(signature, message)
        except InvalidSignature as exc:
            raise ReleaseError("bad signature on the manifest", "release_bad_signature") from exc
